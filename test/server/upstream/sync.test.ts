/**
 * Upstream truth through the running server: a fake Kindwise on 127.0.0.1 is the upstream, no
 * app reports anything, and the keys' verdicts and credits come from the usage sync alone.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { keyIdOf } from '../../../shared/keys.js';
import type { KeyStats, PoolStats, StatsResponse } from '../../../shared/stats.js';
import { FakeClock } from '../../helpers/clock.js';
import { FakeKindwise } from '../../helpers/kindwise.js';
import { makeKeys } from '../../helpers/keys.js';
import { getJson, postJson, startInProcess } from '../../helpers/server.js';
import { until, within } from '../../helpers/wait.js';

const ADMIN = 'admin-token-0123456789abcdef';
const auth = { authorization: `Bearer ${ADMIN}` };
const USAGE = '/api/v3/usage_info';

async function fakeUpstream(t: TestContext, clock: FakeClock): Promise<FakeKindwise> {
  const fake = new FakeKindwise(clock.now);
  await fake.start();
  t.after(() => fake.stop());
  return fake;
}

async function poolStats(url: string, pool = 'plantid'): Promise<PoolStats> {
  return ((await getJson(`${url}/api/stats`)).body as StatsResponse).pools.find((p) => p.name === pool)!;
}

const keyRow = (p: PoolStats, key: string): KeyStats => p.keys.find((k) => k.keyId === keyIdOf(key))!;

describe('upstream truth (usage sync against a fake Kindwise)', () => {
  it('at start an inactive and an unknown key turn invalid with nobody reporting; credits show; a revived key returns at the next sync', async (t) => {
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:00Z'));
    const fake = await fakeUpstream(t, clock);
    const [good, inactive, unknown] = makeKeys(3);
    fake.addKey(good!, { limits: { day: 100, month: 1000 }, used: { day: 10, month: 200 } });
    fake.addKey(inactive!, { active: false });
    const s = await startInProcess(t, {
      clock,
      keys: { plantid: [good!, inactive!, unknown!] },
      pools: { plantid: { upstream: { origin: fake.url } } },
      env: { UPSTREAM_SYNC_INTERVAL_MS: '400' },
    });
    let p = await until('the start-up sync', async () => {
      const st = await poolStats(s.url);
      return st.invalid === 2 && keyRow(st, good!).credits !== null && st;
    });
    assert.deepEqual(
      [
        keyRow(p, inactive!).status,
        keyRow(p, inactive!).reason,
        keyRow(p, unknown!).status,
        keyRow(p, unknown!).reason,
      ],
      [
        'invalid',
        'upstream: The specified api key is not active.',
        'invalid',
        'upstream: The specified api key not found.',
      ],
    );
    assert.deepEqual(keyRow(p, good!).credits, {
      remaining: { day: 90, week: null, month: 800, total: null },
      used: { day: 10, week: 0, month: 200, total: 0 },
      limits: { day: 100, week: null, month: 1000, total: null },
      syncedAt: clock.now(),
    });
    assert.deepEqual(
      [p.available, p.creditsRemaining, p.upstreamSync],
      [1, 90, { ok: true, at: clock.now(), error: null }],
    );
    // Every handout goes to the one good key.
    for (let i = 0; i < 4; i++) assert.equal((await getJson(`${s.url}/api/plantid`)).body.key, good);

    // Deactivated upstream: the periodic sync takes it out; reactivated: the next one brings it back.
    fake.setActive(good!, false);
    await until('the sync to see the key deactivated', async () => (await poolStats(s.url)).available === 0);
    assert.equal((await getJson(`${s.url}/api/plantid`)).status, 503);
    fake.setActive(good!, true);
    fake.setActive(inactive!, true);
    p = await until('the sync to revive both', async () => {
      const st = await poolStats(s.url);
      return st.available === 2 && st;
    });
    assert.equal(keyRow(p, inactive!).status, 'available');
    assert.ok(
      s.lines.some((l) => l.includes(`key ${keyIdOf(inactive!)} back in rotation: the upstream finds it fine`)),
    );

    // usage_info is all a sync ever asks: no credit was spent.
    assert.ok(fake.requests.length >= 6);
    assert.deepEqual([...new Set(fake.requests.map((r) => `${r.method} ${r.path}`))], [`GET ${USAGE}`]);
    assert.equal(fake.remaining(good!).day, 90);
  });

  it('usage_info with counts that are none (-5, 1.8e308, "12") or active "yes" changes no key; creditsRemaining stays sane; one warning per key and sync', async (t) => {
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:00Z'));
    const fake = await fakeUpstream(t, clock);
    const [a, b] = makeKeys(2);
    fake.addKey(a!, { limits: { day: 100 }, used: { day: 10 } });
    fake.addKey(b!, { limits: { day: 100 }, used: { day: 30 } });
    const s = await startInProcess(t, {
      clock,
      keys: { plantid: [a!, b!] },
      pools: { plantid: { upstream: { origin: fake.url } } },
      env: { ADMIN_TOKEN: ADMIN, UPSTREAM_SYNC_INTERVAL_MS: '0' },
    });
    assert.equal((await postJson(`${s.url}/admin/pools/plantid/check`, {}, auth)).status, 200);
    assert.equal((await poolStats(s.url)).creditsRemaining, 160);
    fake.answer(USAGE, (apiKey) => ({
      status: 200,
      body:
        apiKey === a
          ? '{"active": true, "remaining": {"day": -5, "total": 1.8e308}, "used": {"day": "12"}, ' +
            '"credit_limits": {"day": 100}, "can_use_credits": {"value": true}}'
          : '{"active": "yes", "remaining": {"day": 3}, "can_use_credits": {"value": true}}',
    }));
    const checked = await postJson(`${s.url}/admin/pools/plantid/check`, {}, auth);
    assert.equal(checked.status, 200);
    const p = await poolStats(s.url);
    assert.deepEqual([p.available, keyRow(p, a!).status, keyRow(p, b!).status], [2, 'available', 'available']);
    // a's day is unknown now (its -5 ignored), b keeps what it had (its answer was no usage_info): 70 left.
    assert.equal(p.creditsRemaining, 70);
    assert.deepEqual(keyRow(p, a!).credits?.remaining, { day: null, week: null, month: null, total: null });
    const warnings = s.lines.filter((l) => l.includes('no whole numbers of credits'));
    assert.equal(warnings.length, 1);
    assert.match(
      (JSON.parse(warnings[0]!) as { message: string }).message,
      /remaining\.day -5, remaining\.total Infinity, used\.day "12"/u,
    );
  });

  it("a key out of daily credits is exhausted until midnight in the pool's zone and comes back after it (clock moved)", async (t) => {
    const clock = new FakeClock(Date.parse('2026-11-21T05:00:00Z')); // 21:00 on the 20th in Los Angeles
    const fake = await fakeUpstream(t, clock);
    const [spent, fresh] = makeKeys(2);
    fake.addKey(spent!, { limits: { day: 100 }, used: { day: 100 } });
    fake.addKey(fresh!, { limits: { day: 100 } });
    const s = await startInProcess(t, {
      clock,
      keys: { plantid: [spent!, fresh!] },
      pools: { plantid: { resetTimezone: 'America/Los_Angeles', upstream: { origin: fake.url } } },
      env: { ADMIN_TOKEN: ADMIN, UPSTREAM_SYNC_INTERVAL_MS: '0' }, // no rounds: the checks below are the only ones
    });
    assert.equal(fake.requests.length, 0);
    const checked = await postJson(`${s.url}/admin/pools/plantid/check`, '', auth);
    assert.equal(checked.status, 200);
    assert.deepEqual(
      checked.body.keys.map((k: { keyId: string; verdict: string; reason: string | null }) => [
        k.keyId,
        k.verdict,
        k.reason,
      ]),
      [
        [keyIdOf(spent!), 'exhausted', 'Your api key reached its day credit limit (100).'],
        [keyIdOf(fresh!), 'ok', null],
      ],
    );
    let row = keyRow(await poolStats(s.url), spent!);
    assert.deepEqual(
      [row.status, row.reason, row.until],
      ['exhausted', 'upstream: Your api key reached its day credit limit (100).', Date.parse('2026-11-21T08:00:00Z')],
    );
    assert.equal((await poolStats(s.url)).creditsRemaining, 100);
    for (let i = 0; i < 3; i++) assert.equal((await getJson(`${s.url}/api/plantid`)).body.key, fresh);

    clock.set('2026-11-21T08:00:00Z'); // midnight in Los Angeles
    fake.setUsed(spent!, 'day', 0); // the upstream's day turned too
    row = keyRow(await poolStats(s.url), spent!);
    assert.deepEqual([row.status, row.until], ['available', null]);
    const served = new Set<string>();
    for (let i = 0; i < 4; i++) served.add((await getJson(`${s.url}/api/plantid`)).body.key);
    assert.deepEqual(served, new Set([spent, fresh]));
    await postJson(`${s.url}/admin/pools/plantid/check`, '', auth);
    assert.equal(keyRow(await poolStats(s.url), spent!).credits?.remaining.day, 100);
  });

  it('an outage (503, hang, reset) changes no key, shows in upstreamSync and is logged once', async (t) => {
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:00Z'));
    const fake = await fakeUpstream(t, clock);
    const [a, b] = makeKeys(2);
    fake.addKey(a!, { active: false });
    fake.addKey(b!, { limits: { total: 500 } });
    const s = await startInProcess(t, {
      clock,
      keys: { plantid: [a!, b!] },
      pools: { plantid: { upstream: { origin: fake.url } } },
      env: { ADMIN_TOKEN: ADMIN, UPSTREAM_SYNC_INTERVAL_MS: '0', UPSTREAM_TIMEOUT_MS: '300' },
    });
    await postJson(`${s.url}/admin/pools/plantid/check`, '', auth);
    const before = await poolStats(s.url);
    assert.deepEqual(
      [keyRow(before, a!).status, keyRow(before, b!).status, before.creditsRemaining],
      ['invalid', 'available', 500],
    );

    fake.setActive(a!, true); // were the upstream asked, a would come back: it is not asked
    for (const mode of ['503', 'hang', 'reset'] as const) {
      fake.fail(mode);
      clock.advance(60_000);
      const checked = await postJson(`${s.url}/admin/pools/plantid/check`, '', auth);
      assert.deepEqual(
        checked.body.keys.map((k: { verdict: string }) => k.verdict),
        ['unreachable', 'unreachable'],
        mode,
      );
      const p = await poolStats(s.url);
      assert.deepEqual(
        [keyRow(p, a!).status, keyRow(p, a!).reason, keyRow(p, b!).status, keyRow(p, b!).credits],
        [keyRow(before, a!).status, keyRow(before, a!).reason, 'available', keyRow(before, b!).credits],
        mode,
      );
      assert.deepEqual([p.upstreamSync?.ok, p.upstreamSync?.at], [false, clock.now()], mode);
      assert.match(
        p.upstreamSync!.error!,
        mode === '503'
          ? /usage_info answered 503/u
          : mode === 'hang'
            ? /timed out after 300 ms/u
            : /GET http:\/\/127\.0\.0\.1:\d+\/api\/v3\/usage_info: /u,
        mode,
      );
    }
    assert.equal(s.lines.filter((l) => l.includes('upstream sync failed')).length, 1);
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    assert.match(metrics, /^keywarden_upstream_sync_failures_total\{pool="plantid"\} 6$/mu);
    assert.match(metrics, /^keywarden_upstream_sync_duration_seconds_count\{pool="plantid"\} 8$/mu);
    fake.fail('none');
    await postJson(`${s.url}/admin/pools/plantid/check`, '', auth);
    const after = await poolStats(s.url);
    assert.deepEqual(
      [after.upstreamSync?.ok, after.upstreamSync?.error, keyRow(after, a!).status],
      [true, null, 'available'],
    );
    assert.equal(s.lines.filter((l) => l.includes('upstream answers again')).length, 1);
  });

  it('a round at start checks every key at once; later rounds spread the keys over the interval', async (t) => {
    const fake = new FakeKindwise(); // real time: when each request came is what is measured
    await fake.start();
    t.after(() => fake.stop());
    const keys = makeKeys(5);
    for (const k of keys) fake.addKey(k);
    await startInProcess(t, {
      keys: { plantid: keys },
      pools: { plantid: { upstream: { origin: fake.url } } },
      env: { UPSTREAM_SYNC_INTERVAL_MS: '1000' },
    });
    await until('two rounds', async () => fake.requests.length >= 10, 20_000);
    const span = (from: number) => fake.requests[from + 4]!.at - fake.requests[from]!.at;
    assert.deepEqual(new Set(fake.requests.slice(5, 10).map((r) => r.apiKey)), new Set(keys));
    // Five keys over 1000 ms: a check every 200 ms, so the second round spans at least 800 ms (a slow machine only widens it).
    assert.ok(span(5) >= 790, `second round spanned ${span(5)} ms`);
    assert.ok(span(0) < span(5), `the start-up round (${span(0)} ms) is not spread`);
  });

  it('a stop does not wait for an upstream that hangs, and records no outage for the connections it cut', async (t) => {
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:00Z'));
    const fake = await fakeUpstream(t, clock);
    const keys = makeKeys(2);
    for (const k of keys) fake.addKey(k);
    fake.fail('hang');
    const s = await startInProcess(t, {
      clock,
      keys: { plantid: keys },
      pools: { plantid: { upstream: { origin: fake.url } } },
      env: { UPSTREAM_TIMEOUT_MS: '60000' },
    });
    await until('the checks to hang', async () => fake.requests.length === 2);
    await within('the stop', s.stop(), 5000);
    const saved = JSON.parse(await readFile(s.layout.stateFile, 'utf8'));
    assert.equal(saved.pools.plantid.upstreamSync, undefined);
  });

  it('adding a key the upstream rejects is refused with the key file unchanged; ?force adds it; an unreachable upstream adds with a warning', async (t) => {
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:00Z'));
    const fake = await fakeUpstream(t, clock);
    const [kept, bad, good, later] = makeKeys(4);
    fake.addKey(kept!);
    fake.addKey(good!, { limits: { day: 50 } });
    fake.addKey(later!);
    const s = await startInProcess(t, {
      clock,
      keys: { plantid: [kept!] },
      pools: { plantid: { upstream: { origin: fake.url } } },
      env: { ADMIN_TOKEN: ADMIN, UPSTREAM_SYNC_INTERVAL_MS: '0', UPSTREAM_TIMEOUT_MS: '300' },
    });
    const file = join(s.layout.keysDir, 'plantid.txt');
    const original = await readFile(file, 'utf8');

    const refused = await postJson(`${s.url}/admin/pools/plantid/keys`, { keys: [good, bad] }, auth);
    assert.equal(refused.status, 422);
    assert.equal(refused.body.error, 'invalid_key');
    assert.match(refused.body.message, new RegExp(`${keyIdOf(bad!)}: The specified api key not found\\.`, 'u'));
    assert.equal(await readFile(file, 'utf8'), original);
    assert.equal(JSON.stringify(refused.body).includes(bad!), false);

    const added = await postJson(`${s.url}/admin/pools/plantid/keys`, { key: good }, auth);
    assert.equal(added.status, 201);
    assert.deepEqual(added.body.warnings, []);
    assert.equal(keyRow(await poolStats(s.url), good!).credits?.remaining.day, 50); // checked, so known at once

    const forced = await postJson(`${s.url}/admin/pools/plantid/keys?force=true`, { key: bad }, auth);
    assert.equal(forced.status, 201);
    assert.match(forced.body.warnings[0], /added 1 key\(s\) the upstream rejects, as forced/u);
    assert.equal(keyRow(await poolStats(s.url), bad!).status, 'invalid');

    fake.fail('503');
    const unchecked = await postJson(`${s.url}/admin/pools/plantid/keys`, { key: later }, auth);
    assert.equal(unchecked.status, 201);
    assert.match(unchecked.body.warnings[0], /could not be asked about 1 key\(s\) \(usage_info answered 503/u);
    assert.equal(await readFile(file, 'utf8'), `${original}${good}\n${bad}\n${later}\n`);
  });

  it("each key goes to its own pool's upstream and nowhere else; no key in logs, stats, state or errors", async (t) => {
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:00Z'));
    const plant = await fakeUpstream(t, clock);
    const crop = await fakeUpstream(t, clock);
    const plantKeys = makeKeys(3, 'plant');
    const cropKeys = makeKeys(2, 'crop');
    for (const k of plantKeys) plant.addKey(k, { limits: { day: 10 } });
    crop.addKey(cropKeys[0]!, { active: false });
    const s = await startInProcess(t, {
      clock,
      keys: { plantid: plantKeys, healthid: cropKeys },
      pools: {
        plantid: { upstream: { origin: plant.url } },
        healthid: { upstream: { origin: crop.url, usagePath: '/api/v1/usage_info' } },
      },
      env: { ADMIN_TOKEN: ADMIN, UPSTREAM_SYNC_INTERVAL_MS: '300' },
    });
    await until('both pools synced twice', async () => plant.requests.length >= 6 && crop.requests.length >= 4);
    assert.deepEqual(new Set(plant.requests.map((r) => r.apiKey)), new Set(plantKeys));
    assert.deepEqual(new Set(crop.requests.map((r) => r.apiKey)), new Set(cropKeys));
    assert.deepEqual([...new Set(crop.requests.map((r) => r.path))], ['/api/v1/usage_info']);
    const stranger = 'not-a-kindwise-key-at-all';
    const refused = await postJson(`${s.url}/admin/pools/healthid/keys`, { key: stranger }, auth);
    assert.equal(refused.status, 422);
    const stats = (await getJson(`${s.url}/api/stats`)).body;
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    assert.match(
      metrics,
      new RegExp(
        `keywarden_key_credits_remaining\\{pool="plantid",key_id="${keyIdOf(plantKeys[0]!)}",window="day"\\} 10`,
        'u',
      ),
    );
    await s.stop();

    const everything = [
      ...s.lines,
      JSON.stringify(refused.body),
      JSON.stringify(stats),
      metrics,
      await readFile(s.layout.stateFile, 'utf8'),
    ].join('\n');
    assert.ok(everything.includes('upstream: The specified api key is not active.'), 'the test reads what it should');
    for (const k of [...plantKeys, ...cropKeys, stranger])
      assert.equal(everything.includes(k), false, `a key leaked: ${k.slice(0, 4)}…`);
  });
});
