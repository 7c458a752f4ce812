import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PollResult, StatsClient } from '../../bot/api.js';
import { createMonitor } from '../../bot/monitor.js';
import { FakeClock } from '../helpers/clock.js';

function slowClient(clock: FakeClock) {
  const pending: Array<(r: PollResult) => void> = [];
  let calls = 0;
  const client: StatsClient = {
    fetchStats: () => {
      calls++;
      return new Promise((resolve) => pending.push(resolve));
    },
  };
  return {
    client,
    get calls() {
      return calls;
    },
    finish(r: Partial<PollResult> = {}) {
      pending.shift()!({ ok: false, error: 'x', at: clock.now(), ...r } as PollResult);
    },
  };
}

describe('stats monitor', () => {
  it('joins a poll in flight instead of stacking another', async () => {
    const clock = new FakeClock();
    const c = slowClient(clock);
    const m = createMonitor({ client: c.client, intervalMs: 1000, clock: clock.now });
    const a = m.poll();
    const b = m.poll();
    assert.equal(c.calls, 1);
    c.finish();
    assert.equal(await a, await b);
  });

  it('answers from cache when fresh, polls again when stale', async () => {
    const clock = new FakeClock();
    const c = slowClient(clock);
    const m = createMonitor({ client: c.client, intervalMs: 1000, clock: clock.now });
    const first = m.poll();
    c.finish();
    await first;
    clock.advance(29_999);
    assert.equal(await m.fresh(30_000), m.last);
    assert.equal(c.calls, 1);
    clock.advance(1);
    const again = m.fresh(30_000);
    assert.equal(c.calls, 2);
    c.finish({ ok: false, error: 'later' });
    assert.equal(((await again) as { error: string }).error, 'later');
  });

  it('tracks when the server was last seen and tells listeners every result', async () => {
    const clock = new FakeClock();
    const c = slowClient(clock);
    const m = createMonitor({ client: c.client, intervalMs: 1000, clock: clock.now });
    const seen: boolean[] = [];
    m.onResult((r) => seen.push(r.ok));
    const p1 = m.poll();
    c.finish({ ok: true, stats: { version: 't', uptimeSec: 0, generatedAt: 0, pools: [] }, alerts: null, at: 500 });
    await p1;
    clock.advance(5000);
    const p2 = m.poll();
    c.finish();
    await p2;
    assert.deepEqual(seen, [true, false]);
    assert.equal(m.lastSeenAt, 500);
  });

  it('the schedule waits for each poll to finish before timing the next', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] }); // time moves only when ticked
    const settle = () => new Promise((r) => setImmediate(r)); // let a finished poll's promise run on
    const clock = new FakeClock();
    const c = slowClient(clock);
    const m = createMonitor({ client: c.client, intervalMs: 20, clock: clock.now });
    m.start();
    assert.equal(c.calls, 1);
    t.mock.timers.tick(100); // a slow poll: no second one meanwhile
    await settle();
    assert.equal(c.calls, 1);
    c.finish();
    await settle();
    t.mock.timers.tick(19);
    assert.equal(c.calls, 1); // the interval counts from the end of the poll
    t.mock.timers.tick(1);
    assert.equal(c.calls, 2);
    m.stop();
    c.finish();
  });
});
