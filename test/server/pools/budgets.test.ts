/**
 * Apps' budgets on both stores (the in-memory Pool and a RedisPool on a real redis-server):
 * all or nothing, per window in the pool's zone, given back by a recount, apart per app. And the
 * file backend's reservations of budgets: a state saved mid-run and read back after a crash
 * counts every reserved use as spent.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Spender } from '../../../server/pools/budgets.js';
import type { HandoutAttempt } from '../../../server/pools/contract.js';
import { DEFAULT_POLICY } from '../../../server/pools/policy.js';
import { Pool } from '../../../server/pools/pool.js';
import { countReservedAsUsed } from '../../../server/state/reservations.js';
import { FakeClock } from '../../helpers/clock.js';
import { lines, makeKeys } from '../../helpers/keys.js';
import { memoryStore, redisStore, type MakePool } from '../../helpers/stores.js';

const ok = (h: HandoutAttempt) => h.ok;

for (const store of [memoryStore, redisStore()]) {
  describe(`apps' budgets on the ${store.label} store`, { skip: store.skip }, () => {
    let make: MakePool;
    before(async () => {
      make = await store.setup();
    });
    after(() => store.teardown());

    it('a day budget of 5 serves 5, then app_budget_exhausted until midnight in the pool zone', async () => {
      // 23:00 in Kolkata is 17:30 UTC; the pool's day ends at 18:30 UTC.
      const clock = new FakeClock(Date.parse('2026-11-21T17:30:00Z'));
      const p = await make(makeKeys(3), { resetTimezone: 'Asia/Kolkata' }, clock);
      const app: Spender = { app: 'mobile', budget: { day: 5 } };
      const got: HandoutAttempt[] = [];
      for (let i = 0; i < 7; i++) got.push(await p.handout(clock.now(), 1, app));
      assert.deepEqual(got.map(ok), [true, true, true, true, true, false, false]);
      assert.deepEqual(got[5], {
        ok: false,
        reason: 'app_budget_exhausted',
        retryAfterMs: 3_600_000,
        window: 'day',
        limit: 5,
      });
      // Another app, and no app at all, are not held to it.
      assert.equal((await p.handout(clock.now(), 1, { app: 'web', budget: { day: 1 } })).ok, true);
      assert.equal((await p.handout(clock.now())).ok, true);
      clock.set('2026-11-21T18:30:00Z');
      assert.equal((await p.handout(clock.now(), 1, app)).ok, true);
      const usage = await p.appUsage(clock.now());
      assert.deepEqual(usage.mobile, {
        handouts: 6,
        credits: { day: 1, week: 6, month: 6, total: 6 },
        lastSeenAt: clock.now(),
      });
      assert.equal(usage.web?.credits.total, 1);
    });

    it('all or nothing: a create that costs 2 with 1 left is refused; a recount gives uses back', async () => {
      const clock = new FakeClock();
      const p = await make(makeKeys(2), {}, clock);
      const app: Spender = { app: 'crops', budget: { day: 5, month: 100 } };
      const first = await p.handout(clock.now(), 2, app);
      assert.ok(first.ok);
      assert.equal((await p.handout(clock.now(), 2, app)).ok, true);
      const refused = await p.handout(clock.now(), 2, app);
      assert.equal(refused.ok === false && refused.reason, 'app_budget_exhausted');
      assert.equal((await p.handout(clock.now(), 1, app)).ok, true); // the 5th credit
      // The upstream did not charge the first create: its 2 credits come back to the app too.
      assert.equal(await p.recount(first.keyId, -2, clock.now(), clock.now(), 'crops'), true);
      assert.equal((await p.handout(clock.now(), 2, app)).ok, true);
      assert.deepEqual((await p.appUsage(clock.now())).crops?.credits, { day: 5, week: 5, month: 5, total: 5 });
      assert.equal(
        (await p.stats(clock.now())).keys.reduce((n, k) => n + k.served.total, 0),
        5,
      );
    });
  });
}

describe("the file backend's reservations of budgets", () => {
  it('a budgeted app spends only reserved uses; after a crash the reserved ones count as spent', () => {
    const clock = new FakeClock();
    const p = new Pool('p', { ...DEFAULT_POLICY }, { reservations: true });
    p.setKeys(lines(makeKeys(2)), clock.now());
    const app: Spender = { app: 'mobile', budget: { day: 100 } };
    assert.deepEqual(p.handout(clock.now(), 1, app), { ok: false, reason: 'reserving', retryAfterMs: null });
    // A save writes the reservation (a block of 100/50 = 2 beyond the use asked for) and lands.
    const saved = p.drain(true).header.apps!;
    assert.equal(saved.mobile?.reserved, 3);
    p.reservationsSaved(clock.now());
    assert.deepEqual(
      [1, 2, 3].map(() => p.handout(clock.now(), 1, app).ok),
      [true, true, true],
    );
    // Renewed while half the block was left: the next save carries more, the 4th waits for it.
    const crashed = p.exportState();
    crashed.apps = p.drain(true).header.apps;
    assert.ok(crashed.apps!.mobile!.reserved! > 3);
    assert.equal(p.handout(clock.now(), 1, app).ok, false);
    // The process dies before that save confirms: on restart all it reserved counts as spent.
    const counted = countReservedAsUsed(crashed, p.clock, clock.now());
    assert.equal(counted.apps, 1);
    const back = new Pool('p', { ...DEFAULT_POLICY }, { reservations: true });
    back.setKeys(lines(makeKeys(2)), clock.now());
    back.restore(crashed, clock.now());
    const spent = back.appUsage(clock.now()).mobile!.credits.day;
    assert.equal(spent, crashed.apps!.mobile!.spent);
    assert.equal(spent, 5, 'the 3 uses handed out and the 2 reserved beyond them');
  });
});
