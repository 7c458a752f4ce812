import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { alertEmbed, discordTime, poolEmbed, statsEmbeds, unreachableEmbed } from '../../bot/embeds.js';
import type { PoolStats, StatsResponse } from '../../shared/stats.js';

const T = Date.parse('2026-11-21T12:00:00Z');
const S = T / 1000;

function pool(over: Partial<PoolStats> = {}): PoolStats {
  return {
    name: 'plantid',
    strategy: 'round-robin',
    limits: {},
    total: 4,
    available: 2,
    probing: 0,
    exhausted: 1,
    blocked: 1,
    invalid: 0,
    disabled: 0,
    expired: 0,
    current: { keyId: '3f2a9c0d1b7e', masked: 'abcd…wxyz', remaining: 3 },
    throttledUntil: null,
    exhaustsAt: T + 3_600_000,
    upstreamSync: null,
    creditsRemaining: null,
    keyFile: {
      path: '/srv/keys/plantid.txt',
      present: true,
      keyCount: 4,
      skippedLines: 1,
      modifiedAt: T - 60_000,
      error: null,
    },
    proxy: { requests: 0, free: 0, creditsSpent: 0, failovers: 0, pins: 0 },
    keys: [
      {
        keyId: 'aaaaaaaaaaaa',
        masked: 'aaaa…1111',
        status: 'blocked',
        reason: 'reported 429',
        until: T + 60_000,
        served: { minute: 0, hour: 0, day: 0, week: 0, month: 0, total: 9 },
        remaining: null,
        blockedUntil: T + 60_000,
        failures: 0,
        lastUsedAt: T,
        expiresAt: null,
        credits: null,
      },
      {
        keyId: 'bbbbbbbbbbbb',
        masked: 'bbbb…2222',
        status: 'exhausted',
        reason: 'quota: perDay 100/100',
        until: T + 7_200_000,
        served: { minute: 0, hour: 0, day: 100, week: 100, month: 100, total: 100 },
        remaining: 0,
        blockedUntil: null,
        failures: 0,
        lastUsedAt: T,
        expiresAt: null,
        credits: null,
      },
    ],
    ...over,
  };
}

const stats = (pools: PoolStats[]): StatsResponse => ({ version: '1.2.3', uptimeSec: 10, generatedAt: T, pools });

describe('stats embeds', () => {
  it('one pool: availability, current key, keys out with reason and ETA, forecast, key file, colour and data time', () => {
    assert.deepEqual(poolEmbed(pool(), stats([]), 1), {
      title: 'Pool plantid',
      description: '**2/4** keys available · round-robin',
      color: 0x2ecc71,
      fields: [
        { name: 'Current key', value: '`abcd…wxyz` (3f2a9c0d1b7e) · 3 requests before rotation' },
        {
          name: 'Out of rotation (1 blocked, 1 exhausted)',
          value: `\`aaaa…1111\` blocked: reported 429, back <t:${S + 60}:R>\n\`bbbb…2222\` exhausted: quota: perDay 100/100, back <t:${S + 7200}:R>`,
        },
        { name: 'Forecast', value: `runs dry <t:${S + 3600}:R> at the last hour's rate` },
        { name: 'Key file', value: `\`/srv/keys/plantid.txt\`: 4 keys, 1 skipped line, modified <t:${S - 60}:R>` },
      ],
      footer: { text: 'Keywarden 1.2.3 · data from' },
      timestamp: '2026-11-21T12:00:00.000Z',
    });
  });

  it('yellow at the threshold, red at zero; missing key file, no current key, no forecast, throttled', () => {
    const low = poolEmbed(pool({ available: 1 }), stats([]), 1);
    assert.equal(low.color, 0xf1c40f);
    const empty = poolEmbed(
      pool({
        available: 0,
        total: 0,
        blocked: 0,
        exhausted: 0,
        keys: [],
        current: null,
        exhaustsAt: null,
        throttledUntil: T + 5000,
        keyFile: { path: 'keys/x.txt', present: false, keyCount: 0, skippedLines: 0, modifiedAt: null, error: null },
      }),
      stats([]),
      1,
    );
    assert.equal(empty.color, 0xe74c3c);
    assert.equal(
      empty.description,
      `**0/0** keys available · round-robin\nThrottled upstream, serving again <t:${S + 5}:R>`,
    );
    assert.deepEqual(empty.fields, [
      { name: 'Current key', value: 'none yet' },
      { name: 'Out of rotation', value: 'none' },
      { name: 'Forecast', value: 'not running dry before the next reset' },
      { name: 'Key file', value: '`keys/x.txt` is missing' },
    ]);
  });

  it('lists at most 8 keys out, then says how many more', () => {
    const keys = Array.from({ length: 12 }, (_, i) => ({ ...pool().keys[0]!, masked: `k${i}` }));
    const e = poolEmbed(pool({ blocked: 12, exhausted: 0, keys }), stats([]), 1);
    const lines = e.fields![1]!.value.split('\n');
    assert.equal(lines.length, 9);
    assert.equal(lines[8], '… and 4 more');
  });

  it('a synced pool: credits left in the description and per key (fewest first), an invalid key out until the upstream accepts it', () => {
    const credits = (day: number | null, total: number | null) => ({
      remaining: { day, week: null, month: null, total },
      used: { day: 0, week: null, month: null, total: 0 },
      limits: { day: 100, week: null, month: null, total: null },
      syncedAt: T - 60_000,
    });
    const base = pool().keys[0]!;
    const keys = [
      {
        ...base,
        keyId: 'cccccccccccc',
        masked: 'cccc…3333',
        status: 'available' as const,
        reason: null,
        until: null,
        credits: credits(80, 4000),
      },
      {
        ...base,
        keyId: 'dddddddddddd',
        masked: 'dddd…4444',
        status: 'available' as const,
        reason: null,
        until: null,
        credits: credits(12, null),
      },
      {
        ...base,
        keyId: 'eeeeeeeeeeee',
        masked: 'eeee…5555',
        status: 'invalid' as const,
        reason: 'upstream: The specified api key is not active.',
        until: null,
        credits: null,
      },
    ];
    const e = poolEmbed(
      pool({
        available: 2,
        total: 3,
        blocked: 0,
        exhausted: 0,
        invalid: 1,
        keys,
        creditsRemaining: 92,
        upstreamSync: { ok: true, at: T - 60_000, error: null },
      }),
      stats([]),
      1,
    );
    assert.equal(e.description, '**2/3** keys available · round-robin · 92 credits left');
    assert.deepEqual(e.fields![1], {
      name: 'Out of rotation (1 invalid)',
      value: '`eeee…5555` invalid: upstream: The specified api key is not active., until the upstream accepts it',
    });
    assert.deepEqual(e.fields![2], {
      name: 'Credits left (92 on usable keys)',
      value: `\`dddd…4444\` day 12\n\`cccc…3333\` day 80 · total 4000\nsynced <t:${S - 60}:R>`,
    });
    const down = poolEmbed(
      pool({
        keys: [],
        creditsRemaining: null,
        upstreamSync: { ok: false, at: T - 5000, error: 'timed out after 10000 ms' },
      }),
      stats([]),
      1,
    );
    assert.deepEqual(down.fields![2], {
      name: 'Credits left',
      value: `Upstream unreachable (timed out after 10000 ms), last tried <t:${S - 5}:R>`,
    });
    assert.equal(
      poolEmbed(pool(), stats([]), 1).fields!.some((f) => f.name.startsWith('Credits')),
      false,
    ); // no upstream: no field
  });

  it('a pool the proxy serves: credits spent beside its requests, free calls, failovers and pins', () => {
    const e = poolEmbed(
      pool({ proxy: { requests: 40, free: 25, creditsSpent: 17, failovers: 2, pins: 12 } }),
      stats([]),
      1,
    );
    assert.deepEqual(e.fields![2], {
      name: 'Proxy',
      value: '40 requests · **17** credits spent · 25 free · 2 failovers · 12 identifications pinned',
    });
  });

  it('links each pool to the dashboard when DASHBOARD_URL is set', () => {
    assert.equal(
      poolEmbed(pool(), stats([]), 1, 'https://keys.example/dashboard').url,
      'https://keys.example/dashboard',
    );
    assert.equal('url' in poolEmbed(pool(), stats([]), 1), false);
    assert.deepEqual(
      statsEmbeds(stats([pool(), pool({ name: 'healthid' })]), 1, 'https://keys.example/dashboard').map((e) => e.url),
      ['https://keys.example/dashboard', 'https://keys.example/dashboard'],
    );
  });

  it('one embed per pool, and past ten pools a summary of the rest', () => {
    assert.equal(statsEmbeds(stats([pool(), pool({ name: 'healthid' })]), 1).length, 2);
    const many = Array.from({ length: 12 }, (_, i) => pool({ name: `p${i}`, available: i === 11 ? 0 : 2 }));
    const embeds = statsEmbeds(stats(many), 1);
    assert.equal(embeds.length, 10);
    assert.deepEqual(
      [embeds[9]!.title, embeds[9]!.description, embeds[9]!.color],
      ['3 more pools', '**p9** 2/4\n**p10** 2/4\n**p11** 0/4', 0xe74c3c],
    );
  });

  it('the top apps by credits today, against their day budgets, after the pools (one slot kept for them)', () => {
    const use = (day: number, budget: number | null) => ({
      handouts: day,
      credits: { day, week: day, month: day, total: day },
      budget: budget === null ? null : { day: budget },
      lastSeenAt: T,
      outcomes: {},
      failovers: 0,
    });
    const apps = Array.from({ length: 7 }, (_, i) => ({
      name: `app${i}`,
      mode: 'proxy' as const,
      disabled: i === 6,
      lastSeenAt: T,
      usage: { plantid: use(i, i === 6 ? 10 : null) },
    }));
    const embeds = statsEmbeds({ ...stats([pool()]), apps }, 1);
    assert.equal(embeds.length, 2);
    assert.equal(embeds[1]!.title, 'Top apps by credits today (5 of 7)');
    assert.equal(
      embeds[1]!.description,
      [
        '**app6** 6 today (plantid 6/10) · disabled',
        '**app5** 5 today (plantid 5)',
        '**app4** 4 today (plantid 4)',
        '**app3** 3 today (plantid 3)',
        '**app2** 2 today (plantid 2)',
      ].join('\n'),
    );
    const many = Array.from({ length: 12 }, (_, i) => pool({ name: `p${i}` }));
    const full = statsEmbeds({ ...stats(many), apps }, 1);
    assert.deepEqual(
      [full.length, full[8]!.title, full[9]!.title],
      [10, '4 more pools', 'Top apps by credits today (5 of 7)'],
    );
  });
});

describe('unreachable and alert embeds', () => {
  it('unreachable says why and when the server was last seen', () => {
    assert.deepEqual(unreachableEmbed('ECONNREFUSED', T - 120_000, T), {
      title: 'Key server unreachable',
      description: `The key server did not answer (ECONNREFUSED).\nLast seen <t:${S - 120}:R> (<t:${S - 120}:f>).`,
      color: 0xe74c3c,
      footer: { text: 'checked' },
      timestamp: '2026-11-21T12:00:00.000Z',
    });
    assert.match(unreachableEmbed('x', null, T).description!, /Not seen since the bot started/u);
    const degraded = unreachableEmbed('HTTP 503 state_unavailable', T - 5000, T, true);
    assert.equal(degraded.title, 'Key server degraded');
    assert.match(
      degraded.description!,
      /^The key server is up but its state store is not \(HTTP 503 state_unavailable\): apps get 503 until it is back\./u,
    );
  });

  it("the server's alerts as they begin and end; the server's own going and coming", () => {
    const low = {
      id: 'pool_low:plantid',
      event: 'pool_low',
      severity: 'warning' as const,
      pool: 'plantid',
      message: 'pool plantid has 1 of 5 keys usable (alert at 1 or fewer)',
      since: '2026-11-21T11:00:00.000Z',
    };
    assert.deepEqual(alertEmbed({ kind: 'server_alert', phase: 'start', alert: low }, T), {
      title: 'Pool plantid is running low',
      description: 'pool plantid has 1 of 5 keys usable (alert at 1 or fewer).',
      color: 0xf1c40f,
      timestamp: '2026-11-21T12:00:00.000Z',
    });
    assert.deepEqual(
      [
        alertEmbed({ kind: 'server_alert', phase: 'start', alert: { ...low, severity: 'critical' } }, T).title,
        alertEmbed({ kind: 'server_alert', phase: 'end', alert: low }, T).title,
        alertEmbed({ kind: 'server_alert', phase: 'end', alert: low }, T).color,
        alertEmbed({ kind: 'server_alert', phase: 'start', alert: { ...low, event: 'key_invalid' } }, T).title,
        alertEmbed({ kind: 'server_alert', phase: 'start', alert: { ...low, event: 'credits_low' } }, T).title,
      ],
      [
        'Pool plantid has no usable key',
        'Pool plantid recovered',
        0x2ecc71,
        'A key of pool plantid is invalid',
        'Pool plantid is running out of credits',
      ],
    );
    assert.equal(alertEmbed({ kind: 'server_up' }, T).title, 'Key server is back');
    assert.equal(
      alertEmbed({ kind: 'server_down', error: 'HTTP 503 state_unavailable', lastSeenAt: null, degraded: true }, T)
        .title,
      'Key server is degraded (state store down)',
    );
    assert.equal(
      alertEmbed({ kind: 'server_down', error: 'timed out after 10000 ms', lastSeenAt: T - 1000 }, T).description,
      `Polling the stats API failed (timed out after 10000 ms). Last seen <t:${S - 1}:R>.`,
    );
  });

  it('formats Discord timestamps in whole seconds', () => {
    assert.equal(discordTime(1_500_999), '<t:1500:R>');
  });
});
