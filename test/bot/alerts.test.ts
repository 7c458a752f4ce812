import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { INITIAL_ALERT_STATE, stepAlerts, type AlertState } from '../../bot/alerts.js';
import type { PollResult } from '../../bot/api.js';
import type { PoolStats } from '../../shared/stats.js';

const pools = (counts: Record<string, [number, number]>): PollResult => ({
  ok: true,
  at: 1,
  stats: {
    version: 't',
    uptimeSec: 1,
    generatedAt: 1,
    pools: Object.entries(counts).map(
      ([name, [available, total]]) =>
        ({ name, available, total, creditsRemaining: null, keys: [] }) as unknown as PoolStats,
    ),
  },
});

/** A poll of one pool with its credits left and the keys given as [keyId, status]. */
const credits = (creditsRemaining: number | null, keys: Array<[string, string]> = []): PollResult => ({
  ok: true,
  at: 1,
  stats: {
    version: 't',
    uptimeSec: 1,
    generatedAt: 1,
    pools: [
      {
        name: 'p',
        available: 5,
        total: 5,
        creditsRemaining,
        keys: keys.map(([keyId, status]) => ({
          keyId,
          masked: `${keyId.slice(0, 4)}…`,
          status,
          reason: 'upstream: The specified api key is not active.',
        })),
      } as unknown as PoolStats,
    ],
  },
});
const down: PollResult = { ok: false, error: 'ECONNREFUSED', at: 2 };

function run(results: PollResult[], threshold = 1, creditThreshold = 50): string[][] {
  let state: AlertState = INITIAL_ALERT_STATE;
  return results.map((r) => {
    const step = stepAlerts(state, r, { keys: threshold, credits: creditThreshold }, 100);
    state = step.state;
    return step.alerts.map((a) => `${a.kind}${'pool' in a ? ` ${a.pool}` : ''}`);
  });
}

describe('alert state machine', () => {
  it('is quiet while everything is fine', () => {
    assert.deepEqual(run([pools({ a: [5, 5] }), pools({ a: [4, 5] })]), [[], []]);
  });

  it('alerts once on dropping to the threshold, once on zero, once on recovery', () => {
    assert.deepEqual(
      run([
        pools({ a: [3, 3] }),
        pools({ a: [1, 3] }),
        pools({ a: [1, 3] }),
        pools({ a: [0, 3] }),
        pools({ a: [0, 3] }),
        pools({ a: [1, 3] }),
        pools({ a: [2, 3] }),
        pools({ a: [3, 3] }),
      ]),
      [[], ['pool_low a'], [], ['pool_empty a'], [], [], ['pool_recovered a'], []],
    );
  });

  it('straight to zero is one empty alert', () => {
    assert.deepEqual(run([pools({ a: [3, 3] }), pools({ a: [0, 0] }), pools({ a: [0, 0] })]), [
      [],
      ['pool_empty a'],
      [],
    ]);
  });

  it('a pool already low or empty at first sight alerts; one that is fine does not', () => {
    assert.deepEqual(run([pools({ a: [0, 3], b: [1, 4], c: [4, 4] })]), [['pool_empty a', 'pool_low b']]);
  });

  it('server down and back once each, pool levels kept across the outage', () => {
    assert.deepEqual(run([pools({ a: [0, 3] }), down, down, pools({ a: [0, 3] }), down, pools({ a: [3, 3] })]), [
      ['pool_empty a'],
      ['server_down'],
      [],
      ['server_up'],
      ['server_down'],
      ['server_up', 'pool_recovered a'],
    ]);
  });

  it('unreachable from the start alerts down', () => {
    assert.deepEqual(run([down, down]), [['server_down'], []]);
  });

  it('the down alert carries the error and when the server was last seen', () => {
    const { alerts } = stepAlerts({ ...INITIAL_ALERT_STATE, server: 'up' }, down, { keys: 1, credits: 50 }, 12345);
    assert.deepEqual(alerts, [{ kind: 'server_down', error: 'ECONNREFUSED', lastSeenAt: 12345 }]);
  });

  it('a degraded server (state store down) alerts as down, saying so', () => {
    const { alerts } = stepAlerts(
      { ...INITIAL_ALERT_STATE, server: 'up' },
      { ok: false, error: 'HTTP 503 state_unavailable', at: 3, degraded: true },
      { keys: 1, credits: 50 },
      7,
    );
    assert.deepEqual(alerts, [
      { kind: 'server_down', error: 'HTTP 503 state_unavailable', lastSeenAt: 7, degraded: true },
    ]);
  });

  it('the threshold is configurable (0: only empty pools alert)', () => {
    assert.deepEqual(run([pools({ a: [3, 3] }), pools({ a: [1, 3] }), pools({ a: [0, 3] })], 0), [
      [],
      [],
      ['pool_empty a'],
    ]);
  });

  it('credits: one alert on falling under LOW_CREDITS_THRESHOLD, again only after they were back; none while unknown', () => {
    assert.deepEqual(
      run([credits(null), credits(400), credits(49), credits(10), credits(60), credits(5), credits(null)]),
      [[], [], ['credits_low p'], [], [], ['credits_low p'], []],
    );
    assert.deepEqual(run([credits(5)], 1, 0), [[]]);
    const { alerts } = stepAlerts(INITIAL_ALERT_STATE, credits(12), { keys: 1, credits: 50 }, null);
    assert.deepEqual(alerts, [{ kind: 'credits_low', pool: 'p', creditsRemaining: 12, threshold: 50 }]);
  });

  it('a key turning invalid alerts once, naming it masked with the reason; again if it comes back and goes again', () => {
    const steps = [
      credits(null, [['aaaaaaaaaaaa', 'available']]),
      credits(null, [['aaaaaaaaaaaa', 'invalid']]),
      credits(null, [
        ['aaaaaaaaaaaa', 'invalid'],
        ['bbbbbbbbbbbb', 'disabled'],
      ]),
      credits(null, [['aaaaaaaaaaaa', 'available']]),
      credits(null, [['aaaaaaaaaaaa', 'invalid']]),
    ];
    assert.deepEqual(run(steps), [[], ['key_invalid p'], [], [], ['key_invalid p']]);
    const { alerts } = stepAlerts(INITIAL_ALERT_STATE, steps[1]!, { keys: 1, credits: 50 }, null);
    assert.deepEqual(alerts, [
      {
        kind: 'key_invalid',
        pool: 'p',
        keyId: 'aaaaaaaaaaaa',
        masked: 'aaaa…',
        reason: 'upstream: The specified api key is not active.',
      },
    ]);
  });
});
