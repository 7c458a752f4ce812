import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { INITIAL_ALERT_STATE, stepAlerts, type AlertState } from '../../bot/alerts.js';
import type { PollResult } from '../../bot/api.js';
import type { PoolStats } from '../../shared/stats.js';

const pools = (counts: Record<string, [number, number]>): PollResult => ({
  ok: true,
  at: 1,
  stats: { version: 't', uptimeSec: 1, generatedAt: 1, pools: Object.entries(counts).map(([name, [available, total]]) => ({ name, available, total }) as PoolStats) },
});
const down: PollResult = { ok: false, error: 'ECONNREFUSED', at: 2 };

function run(results: PollResult[], threshold = 1): string[][] {
  let state: AlertState = INITIAL_ALERT_STATE;
  return results.map((r) => {
    const step = stepAlerts(state, r, threshold, 100);
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
      run([pools({ a: [3, 3] }), pools({ a: [1, 3] }), pools({ a: [1, 3] }), pools({ a: [0, 3] }), pools({ a: [0, 3] }), pools({ a: [1, 3] }), pools({ a: [2, 3] }), pools({ a: [3, 3] })]),
      [[], ['pool_low a'], [], ['pool_empty a'], [], [], ['pool_recovered a'], []],
    );
  });

  it('straight to zero is one empty alert', () => {
    assert.deepEqual(run([pools({ a: [3, 3] }), pools({ a: [0, 0] }), pools({ a: [0, 0] })]), [[], ['pool_empty a'], []]);
  });

  it('a pool already low or empty at first sight alerts; one that is fine does not', () => {
    assert.deepEqual(run([pools({ a: [0, 3], b: [1, 4], c: [4, 4] })]), [['pool_empty a', 'pool_low b']]);
  });

  it('server down and back once each, pool levels kept across the outage', () => {
    assert.deepEqual(
      run([pools({ a: [0, 3] }), down, down, pools({ a: [0, 3] }), down, pools({ a: [3, 3] })]),
      [['pool_empty a'], ['server_down'], [], ['server_up'], ['server_down'], ['server_up', 'pool_recovered a']],
    );
  });

  it('unreachable from the start alerts down', () => {
    assert.deepEqual(run([down, down]), [['server_down'], []]);
  });

  it('the down alert carries the error and when the server was last seen', () => {
    const { alerts } = stepAlerts({ server: 'up', pools: {} }, down, 1, 12345);
    assert.deepEqual(alerts, [{ kind: 'server_down', error: 'ECONNREFUSED', lastSeenAt: 12345 }]);
  });

  it('a degraded server (state store down) alerts as down, saying so', () => {
    const { alerts } = stepAlerts({ server: 'up', pools: {} }, { ok: false, error: 'HTTP 503 state_unavailable', at: 3, degraded: true }, 1, 7);
    assert.deepEqual(alerts, [{ kind: 'server_down', error: 'HTTP 503 state_unavailable', lastSeenAt: 7, degraded: true }]);
  });

  it('the threshold is configurable (0: only empty pools alert)', () => {
    assert.deepEqual(run([pools({ a: [3, 3] }), pools({ a: [1, 3] }), pools({ a: [0, 3] })], 0), [[], [], ['pool_empty a']]);
  });
});
