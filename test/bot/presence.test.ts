import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PollResult } from '../../bot/api.js';
import { presenceFor } from '../../bot/presence.js';
import type { PoolStats } from '../../shared/stats.js';

const ok = (counts: Array<[string, number, number]>): PollResult => ({
  ok: true,
  at: 1,
  alerts: null,
  stats: {
    version: 't',
    uptimeSec: 1,
    generatedAt: 1,
    pools: counts.map(([name, available, total]) => ({ name, available, total }) as PoolStats),
  },
});

describe('presence', () => {
  it('online with the counts when every pool is above the threshold', () => {
    assert.deepEqual(
      presenceFor(
        ok([
          ['plantid', 7, 10],
          ['healthid', 3, 5],
        ]),
        1,
      ),
      {
        status: 'online',
        activities: [{ name: 'Custom Status', type: 4, state: 'plantid 7/10 · healthid 3/5' }],
      },
    );
  });

  it('idle when a pool is at or below the threshold, including empty', () => {
    assert.equal(
      presenceFor(
        ok([
          ['plantid', 7, 10],
          ['healthid', 2, 5],
        ]),
        2,
      ).status,
      'idle',
    );
    assert.equal(presenceFor(ok([['plantid', 0, 10]]), 0).status, 'idle');
  });

  it('dnd saying the key server is unreachable when the poll failed', () => {
    assert.deepEqual(presenceFor({ ok: false, error: 'ECONNREFUSED', at: 1 }, 1), {
      status: 'dnd',
      activities: [{ name: 'Custom Status', type: 4, state: 'Key server unreachable' }],
    });
  });

  it('dnd saying the server is degraded when its state store is down', () => {
    assert.deepEqual(presenceFor({ ok: false, error: 'HTTP 503 state_unavailable', at: 1, degraded: true }, 1), {
      status: 'dnd',
      activities: [{ name: 'Custom Status', type: 4, state: 'Key server degraded: state store down' }],
    });
  });

  it("keeps within Discord's 128-character status", () => {
    const many = Array.from({ length: 20 }, (_, i): [string, number, number] => [`pool-number-${i}`, 5, 5]);
    const state = presenceFor(ok(many), 1).activities![0]!.state!;
    assert.equal(state.length, 128);
    assert.ok(state.endsWith('…'));
  });
});
