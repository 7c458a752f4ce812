/**
 * One suite, two stores: every rotation, limit and health rule runs against the in-memory Pool
 * (file backend) and the RedisPool (a real redis-server running redis/rules.lua), and must give
 * the same results. Persistence of the file backend is in pool.test.ts; random operations on
 * both side by side are in differential.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { keyIdOf } from '../../../shared/keys.js';
import type { Handout, HandoutAttempt, PoolBackend } from '../../../server/pools/contract.js';
import { FakeClock } from '../../helpers/clock.js';
import { lines, makeKeys } from '../../helpers/keys.js';
import { memoryStore, redisStore, times, type MakePool } from '../../helpers/stores.js';

for (const store of [memoryStore, redisStore()]) {
  describe(`rules on the ${store.label} store`, { skip: store.skip }, () => {
    let make: MakePool;
    before(async () => {
      make = await store.setup();
    });
    after(() => store.teardown());

    const served = (h: HandoutAttempt): string => {
      assert.equal(h.ok, true, `expected a key, got ${JSON.stringify(h)}`);
      return (h as Handout & { ok: true }).key;
    };
    const take = async (p: PoolBackend, clock: FakeClock, n: number) =>
      (await times(n, () => Promise.resolve(p.handout(clock.now())))).map(served);
    const row = async (p: PoolBackend, clock: FakeClock, key: string) =>
      (await p.stats(clock.now())).keys.find((k) => k.keyId === keyIdOf(key))!;

    describe('the core, in brief', () => {
      it('round-robin in file order, rotateEvery turns with remaining counting down', async () => {
        const clock = new FakeClock();
        const [a, b, c] = makeKeys(3);
        assert.deepEqual(await take(await make([a!, b!, c!], {}, clock), clock, 4), [a, b, c, a]);
        const p = await make([a!, b!], { rotateEvery: 3 }, clock);
        const got: Array<Handout & { ok: true }> = [];
        for (let i = 0; i < 7; i++) got.push((await p.handout(clock.now())) as Handout & { ok: true });
        assert.deepEqual(
          got.map((h) => h.key),
          [a, a, a, b, b, b, a],
        );
        assert.deepEqual(
          got.map((h) => h.remaining),
          [2, 1, 0, 2, 1, 0, 2],
        );
      });

      it('fill-first stays on the first key until its limit and returns after the reset', async () => {
        const clock = new FakeClock(Date.parse('2026-11-21T12:00:10Z'));
        const [a, b] = makeKeys(2);
        const p = await make([a!, b!], { strategy: 'fill-first', limits: { perMinute: 3 } }, clock);
        assert.deepEqual(await take(p, clock, 5), [a, a, a, b, b]);
        clock.set('2026-11-21T12:01:00Z');
        assert.deepEqual(await take(p, clock, 1), [a]);
      });

      it('least-recently-used, including a key back from a block; random through the rng', async () => {
        const clock = new FakeClock();
        const [a, b, c] = makeKeys(3);
        const p = await make([a!, b!, c!], { strategy: 'least-recently-used' }, clock);
        assert.deepEqual(await take(p, clock, 3), [a, b, c]);
        await p.report({ keyId: keyIdOf(a!), outcome: 'rate_limited', retryAfterSec: 5 }, clock.now());
        assert.deepEqual(await take(p, clock, 4), [b, c, b, c]);
        clock.advance(5000);
        assert.deepEqual(await take(p, clock, 3), [a, b, c]);
        const rolls = [0.99, 0, 0.5];
        const r = await make([a!, b!, c!], { strategy: 'random' }, clock, () => rolls.shift()!);
        assert.deepEqual(await take(r, clock, 3), [c, a, b]);
      });

      it('limits: perMinute with retryAfter, total never resets, pool cap is pool_rate_limited', async () => {
        const clock = new FakeClock(Date.parse('2026-11-21T12:00:15Z'));
        const [a, b] = makeKeys(2);
        const p = await make([a!, b!], { limits: { perMinute: 2 } }, clock);
        assert.deepEqual(await take(p, clock, 4), [a, b, a, b]);
        assert.deepEqual(await p.handout(clock.now()), { ok: false, reason: 'no_key_available', retryAfterMs: 45_000 });
        assert.deepEqual(
          [(await row(p, clock, a!)).reason, (await row(p, clock, a!)).until],
          ['quota: perMinute 2/2', Date.parse('2026-11-21T12:01:00Z')],
        );
        const q = await make([a!], { limits: { total: 2 } }, clock);
        await take(q, clock, 2);
        clock.advance(40 * 86_400_000);
        assert.deepEqual(await q.handout(clock.now()), { ok: false, reason: 'no_key_available', retryAfterMs: null });
        const capped = await make(makeKeys(4), { poolPerMinute: 3 }, clock);
        await take(capped, clock, 3);
        assert.equal(((await capped.handout(clock.now())) as { reason: string }).reason, 'pool_rate_limited');
      });

      it('perDay resets at Pacific midnight', async () => {
        const clock = new FakeClock(Date.parse('2026-11-21T07:00:00Z'));
        const [a] = makeKeys(1);
        const p = await make([a!], { limits: { perDay: 1 }, resetTimezone: 'America/Los_Angeles' }, clock);
        await take(p, clock, 1);
        assert.deepEqual(await p.handout(clock.now()), {
          ok: false,
          reason: 'no_key_available',
          retryAfterMs: 3_600_000,
        });
        clock.set('2026-11-21T08:00:00Z');
        assert.equal((await p.handout(clock.now())).ok, true);
      });

      it('leases are cut to the limits and the pool cap', async () => {
        const clock = new FakeClock(Date.parse('2026-11-21T12:00:00Z'));
        const [a, b] = makeKeys(2);
        const p = await make([a!, b!], { strategy: 'fill-first', limits: { perMinute: 10 }, poolPerMinute: 15 }, clock);
        const g = [];
        for (const want of [8, 8, 8]) g.push(((await p.handout(clock.now(), want)) as Handout & { ok: true }).granted);
        assert.deepEqual(g, [8, 2, 5]);
      });

      it('Retry-After exact; backoff ladder 60 s, 2 min, then reset by ok; probing one caller', async () => {
        const clock = new FakeClock();
        const [a, b] = makeKeys(2);
        const p = await make([a!, b!], { strategy: 'fill-first' }, clock);
        await p.report({ keyId: keyIdOf(a!), status: 429, retryAfterSec: 17 }, clock.now());
        assert.deepEqual(
          [(await row(p, clock, a!)).until, (await row(p, clock, a!)).reason],
          [clock.now() + 17_000, 'reported 429'],
        );
        clock.advance(17_000);
        assert.equal((await row(p, clock, a!)).status, 'probing');
        assert.deepEqual(await take(p, clock, 3), [a, b, b]); // one probe only
        await p.report({ keyId: keyIdOf(a!), outcome: 'rate_limited' }, clock.now()); // rung: 60 s (level 0 → retryAfter did not climb)
        assert.equal((await row(p, clock, a!)).until! - clock.now(), 60_000);
        clock.advance(60_000);
        await take(p, clock, 1);
        await p.report({ keyId: keyIdOf(a!), outcome: 'rate_limited' }, clock.now());
        assert.equal((await row(p, clock, a!)).until! - clock.now(), 120_000);
        clock.advance(120_000);
        await take(p, clock, 1);
        await p.report({ keyId: keyIdOf(a!), outcome: 'ok' }, clock.now());
        assert.deepEqual(await take(p, clock, 2), [a, a]);
        await p.report({ keyId: keyIdOf(a!), outcome: 'rate_limited' }, clock.now());
        assert.equal((await row(p, clock, a!)).until! - clock.now(), 60_000);
      });

      it('one error does not block; three within the window do; invalid disables until the line changes', async () => {
        const clock = new FakeClock();
        const [a, b] = makeKeys(2);
        const p = await make([a!, b!], {}, clock);
        await p.report({ keyId: keyIdOf(a!), status: 503 }, clock.now());
        assert.deepEqual([(await row(p, clock, a!)).status, (await row(p, clock, a!)).failures], ['available', 1]);
        await p.report({ keyId: keyIdOf(a!), status: 500 }, clock.now());
        await p.report({ keyId: keyIdOf(a!), outcome: 'error' }, clock.now());
        const r = await row(p, clock, a!);
        assert.deepEqual(
          [r.status, r.until, r.reason],
          ['blocked', clock.now() + 60_000, '3 errors in 300s (last: reported error)'],
        );
        await p.report({ keyId: keyIdOf(b!), status: 401 }, clock.now());
        assert.deepEqual(
          [(await row(p, clock, b!)).status, (await row(p, clock, b!)).reason],
          ['disabled', 'invalid: 401'],
        );
        assert.deepEqual((await p.setKeys(lines([a!, `${b}  # renewed`]), clock.now())).reenabled, 1);
        assert.equal((await row(p, clock, b!)).status, 'available');
        assert.deepEqual(await p.report({ keyId: 'ffffffffffff', outcome: 'ok' }, clock.now()), {
          ok: false,
          reason: 'unknown_key',
        });
      });

      it('correlated 429s throttle the pool and leave the keys unmarked', async () => {
        const clock = new FakeClock();
        const keys = makeKeys(4);
        const p = await make(keys, {}, clock);
        for (const k of keys.slice(0, 3)) {
          await p.report({ keyId: keyIdOf(k), outcome: 'rate_limited', retryAfterSec: 8 }, clock.now());
          clock.advance(1000);
        }
        const st = await p.stats(clock.now());
        assert.deepEqual([st.available, st.blocked, st.throttledUntil], [4, 0, clock.now() + 7000]);
        assert.deepEqual(await p.handout(clock.now()), { ok: false, reason: 'pool_throttled', retryAfterMs: 7000 });
      });

      it('perWeek counts from Monday 00:00 in resetTimezone and resets then; a key reported exhausted waits for the week', async () => {
        const clock = new FakeClock(Date.parse('2026-11-29T07:00:00Z')); // Sunday 23:00 in Los Angeles
        const [a, b] = makeKeys(2);
        const p = await make(
          [a!, b!],
          { strategy: 'fill-first', limits: { perWeek: 2 }, resetTimezone: 'America/Los_Angeles' },
          clock,
        );
        assert.deepEqual(await take(p, clock, 3), [a, a, b]);
        const out = await row(p, clock, a!);
        assert.deepEqual(
          [out.status, out.reason, out.until, out.served.week],
          ['exhausted', 'quota: perWeek 2/2', Date.parse('2026-11-30T08:00:00Z'), 2],
        );
        clock.set('2026-11-30T07:59:59.999Z');
        assert.deepEqual(await take(p, clock, 1), [b]);
        clock.set('2026-11-30T08:00:00Z'); // Monday 00:00 in Los Angeles: a new week there (UTC's began 8 hours ago)
        assert.deepEqual(await take(p, clock, 1), [a]);
        assert.equal((await row(p, clock, a!)).served.week, 1);
        await p.report({ keyId: keyIdOf(b!), outcome: 'exhausted' }, clock.now());
        assert.equal((await row(p, clock, b!)).until, Date.parse('2026-12-07T08:00:00Z'));
      });

      it('an operator clears a pool throttle: handouts resume at once, and a second clear says none was in force', async () => {
        const clock = new FakeClock();
        const keys = makeKeys(3);
        const p = await make(keys, {}, clock);
        for (const k of keys.slice(0, 2))
          await p.report({ keyId: keyIdOf(k), outcome: 'rate_limited', retryAfterSec: 600 }, clock.now());
        assert.equal((await p.handout(clock.now())).ok, false);
        assert.equal(await p.clearThrottle(clock.now()), true);
        assert.equal((await p.stats(clock.now())).throttledUntil, null);
        assert.equal((await p.handout(clock.now())).ok, true);
        assert.equal(await p.clearThrottle(clock.now()), false);
        // The 429s behind it are forgotten: one more does not throttle the pool again.
        await p.report({ keyId: keyIdOf(keys[2]!), outcome: 'rate_limited', retryAfterSec: 5 }, clock.now());
        assert.equal((await p.stats(clock.now())).throttledUntil, null);
      });

      it('reloads keep counters and blocks; removed keys leave; re-added keys resume', async () => {
        const clock = new FakeClock();
        const [a, b, c] = makeKeys(3);
        const p = await make([a!, b!], { limits: { total: 3 } }, clock);
        await take(p, clock, 4);
        assert.deepEqual(await p.setKeys(lines([b!, c!]), clock.now()), {
          added: 1,
          removed: 1,
          kept: 1,
          reenabled: 0,
        });
        assert.deepEqual(await take(p, clock, 3), [c, b, c]);
        assert.equal((await row(p, clock, b!)).served.total, 3);
        await p.setKeys(lines([a!, b!, c!]), clock.now());
        assert.equal((await row(p, clock, a!)).served.total, 2);
      });
    });

    describe('selection', () => {
      it('round-robin hands keys out in file order, one each by default', async () => {
        const clock = new FakeClock();
        const [a, b, c] = makeKeys(3);
        const p = await make([a!, b!, c!], {}, clock);
        assert.deepEqual(await take(p, clock, 7), [a, b, c, a, b, c, a]);
      });

      it('round-robin with rotateEvery serves each key that many times, counting remaining down', async () => {
        const clock = new FakeClock();
        const [a, b] = makeKeys(2);
        const p = await make([a!, b!], { rotateEvery: 3 }, clock);
        const got = await times(7, async () => (await p.handout(clock.now())) as Handout & { ok: true });
        assert.deepEqual(
          got.map((h) => h.key),
          [a, a, a, b, b, b, a],
        );
        assert.deepEqual(
          got.map((h) => h.remaining),
          [2, 1, 0, 2, 1, 0, 2],
        );
      });

      it('fill-first stays on the first key until its limit, then moves on and returns after the reset', async () => {
        const clock = new FakeClock(Date.parse('2026-11-21T12:00:10Z'));
        const [a, b] = makeKeys(2);
        const p = await make([a!, b!], { strategy: 'fill-first', limits: { perMinute: 3 } }, clock);
        const got = await times(5, async () => (await p.handout(clock.now())) as Handout & { ok: true });
        assert.deepEqual(
          got.map((h) => h.key),
          [a, a, a, b, b],
        );
        assert.deepEqual(
          got.map((h) => h.remaining),
          [2, 1, 0, 2, 1],
        );
        clock.set('2026-11-21T12:01:00Z');
        assert.equal(served(await p.handout(clock.now())), a);
      });

      it('least-recently-used picks the key idle longest, including one back from a block', async () => {
        const clock = new FakeClock();
        const [a, b, c] = makeKeys(3);
        const p = await make([a!, b!, c!], { strategy: 'least-recently-used' }, clock);
        assert.deepEqual(await take(p, clock, 3), [a, b, c]);
        await p.report({ keyId: keyIdOf(a!), outcome: 'rate_limited', retryAfterSec: 5 }, clock.now());
        assert.deepEqual(await take(p, clock, 4), [b, c, b, c]);
        clock.advance(5000);
        assert.deepEqual(await take(p, clock, 3), [a, b, c]);
      });

      it('random picks uniformly among usable keys through the injected rng', async () => {
        const clock = new FakeClock();
        const [a, b, c] = makeKeys(3);
        const rolls = [0.99, 0.0, 0.5, 0.4];
        const p = await make([a!, b!, c!], { strategy: 'random' }, clock, () => rolls.shift()!);
        assert.deepEqual(await take(p, clock, 3), [c, a, b]);
        await p.admin('disable', keyIdOf(a!), clock.now(), 'test');
        assert.equal(served(await p.handout(clock.now())), b); // 0.4 * 2 usable → second usable key... index 0 → b
      });
    });

    describe('limits', () => {
      it('a key at perMinute is exhausted until the next minute; no key → retryAfter to the reset', async () => {
        const clock = new FakeClock(Date.parse('2026-11-21T12:00:15Z'));
        const [a, b] = makeKeys(2);
        const p = await make([a!, b!], { limits: { perMinute: 2 } }, clock);
        assert.deepEqual(await take(p, clock, 4), [a, b, a, b]);
        assert.deepEqual(await p.handout(clock.now()), { ok: false, reason: 'no_key_available', retryAfterMs: 45_000 });
        const stats = await p.stats(clock.now());
        assert.equal(stats.exhausted, 2);
        assert.equal(stats.keys[0]!.reason, 'quota: perMinute 2/2');
        assert.equal(stats.keys[0]!.until, Date.parse('2026-11-21T12:01:00Z'));
        clock.set('2026-11-21T12:01:00Z');
        assert.deepEqual(await take(p, clock, 2), [a, b]);
      });

      it('total never resets and gives no retryAfter', async () => {
        const clock = new FakeClock();
        const [a] = makeKeys(1);
        const p = await make([a!], { limits: { total: 2 } }, clock);
        await take(p, clock, 2);
        assert.deepEqual(await p.handout(clock.now()), { ok: false, reason: 'no_key_available', retryAfterMs: null });
        clock.advance(40 * 86_400_000);
        assert.equal((await p.handout(clock.now())).ok, false);
      });

      it('a key must be under every limit; it returns when all that were hit have reset', async () => {
        const clock = new FakeClock(Date.parse('2026-11-21T23:59:30Z'));
        const [a] = makeKeys(1);
        const p = await make([a!], { limits: { perMinute: 1, perDay: 2 } }, clock);
        await take(p, clock, 1);
        clock.set('2026-11-21T23:59:50Z');
        assert.equal((await p.handout(clock.now())).ok, false);
        clock.set('2026-11-22T00:00:00Z');
        await take(p, clock, 1);
        clock.set('2026-11-22T00:01:00Z');
        await take(p, clock, 1);
        clock.set('2026-11-22T00:02:00Z');
        assert.deepEqual(await p.handout(clock.now()), {
          ok: false,
          reason: 'no_key_available',
          retryAfterMs: Date.parse('2026-11-23T00:00:00Z') - clock.now(),
        });
      });

      it('poolPerMinute caps handouts across keys with a pool_rate_limited answer', async () => {
        const clock = new FakeClock(Date.parse('2026-11-21T12:00:50Z'));
        const p = await make(makeKeys(5), { poolPerMinute: 3 }, clock);
        await take(p, clock, 3);
        assert.deepEqual(await p.handout(clock.now()), {
          ok: false,
          reason: 'pool_rate_limited',
          retryAfterMs: 10_000,
        });
        clock.advance(10_000);
        await take(p, clock, 3);
      });

      it('remaining is min(turn left, limit left) and null when unbounded', async () => {
        const clock = new FakeClock();
        const [a, b] = makeKeys(2);
        const unbounded = await make([a!, b!], { strategy: 'fill-first' }, clock);
        assert.equal(((await unbounded.handout(clock.now())) as Handout & { ok: true }).remaining, null);
        const p = await make([a!, b!], { rotateEvery: 10, limits: { perHour: 3 } }, clock);
        assert.deepEqual(
          await times(4, async () => ((await p.handout(clock.now())) as Handout & { ok: true }).remaining),
          [2, 1, 0, 2],
        );
      });
    });

    describe('membership and persistence', () => {
      it('reloading keeps counters of keys that stay, drops removed keys and resumes re-added ones', async () => {
        const clock = new FakeClock();
        const [a, b, c] = makeKeys(3);
        const p = await make([a!, b!], { limits: { total: 3 } }, clock);
        await take(p, clock, 4); // a,b,a,b
        const summary = await p.setKeys(lines([b!, c!]), clock.now());
        assert.deepEqual(summary, { added: 1, removed: 1, kept: 1, reenabled: 0 });
        assert.deepEqual(await take(p, clock, 3), [c, b, c]);
        assert.equal((await p.stats(clock.now())).keys.find((k) => k.keyId === keyIdOf(b!))!.served.total, 3);
        await p.setKeys(lines([a!, b!, c!]), clock.now());
        assert.equal((await p.stats(clock.now())).keys.find((k) => k.keyId === keyIdOf(a!))!.served.total, 2);
      });

      it('every window count, total and last use follows its key when a reload moves the keys to other slots', async () => {
        const clock = new FakeClock();
        const keys = makeKeys(5);
        const p = await make(keys, { limits: { perMinute: 100, perDay: 100 } }, clock);
        for (let i = 0; i < 5; i++) {
          await p.handout(clock.now(), i + 1); // key i: a lease of i + 1 uses, at its own time
          clock.advance(1000);
        }
        const served = async (q: PoolBackend) =>
          Object.fromEntries(
            (await q.stats(clock.now())).keys.map((k) => [k.keyId, { served: k.served, lastUsedAt: k.lastUsedAt }]),
          );
        const before = await served(p);
        assert.deepEqual(
          keys.map((k) => before[keyIdOf(k)]!.served.day),
          [1, 2, 3, 4, 5],
        );
        await p.setKeys(lines([...keys].reverse()), clock.now()); // every key moves
        assert.deepEqual(await served(p), before);
        await p.setKeys(lines(keys.slice(2)), clock.now()); // two retired
        await p.setKeys(lines([keys[4]!, keys[0]!, keys[2]!, keys[1]!, keys[3]!]), clock.now()); // and back, in another order
        assert.deepEqual(await served(p), before);
        clock.advance(60_000); // the minute window ended for all; the day window did not
        for (const k of (await p.stats(clock.now())).keys) {
          assert.equal(k.served.minute, 0);
          assert.equal(k.served.day, before[k.keyId]!.served.day);
        }
      });
    });

    describe('reports', () => {
      it('rate_limited with retryAfter blocks for exactly that long', async () => {
        const clock = new FakeClock();
        const [a, b] = makeKeys(2);
        const p = await make([a!, b!], {}, clock);
        await p.report({ keyId: keyIdOf(a!), outcome: 'rate_limited', retryAfterSec: 42 }, clock.now());
        assert.deepEqual(await take(p, clock, 2), [b, b]);
        clock.advance(41_999);
        assert.equal(served(await p.handout(clock.now())), b);
        clock.advance(1);
        assert.equal(served(await p.handout(clock.now())), a);
      });

      it('invalid disables until the line changes', async () => {
        const clock = new FakeClock();
        const [a, b] = makeKeys(2);
        const p = await make([a!, b!], {}, clock);
        await p.report({ keyId: keyIdOf(a!), outcome: 'invalid' }, clock.now());
        clock.advance(86_400_000);
        assert.deepEqual(await take(p, clock, 2), [b, b]);
        await p.setKeys(lines([a!, b!]), clock.now());
        assert.equal((await p.stats(clock.now())).disabled, 1);
        assert.deepEqual((await p.setKeys(lines([`${a}  # renewed`, b!]), clock.now())).reenabled, 1);
        assert.deepEqual((await take(p, clock, 2)).sort(), [a, b].sort());
      });

      it('an unknown keyId is reported as such', async () => {
        const p = await make(makeKeys(1));
        assert.deepEqual(await p.report({ keyId: 'ffffffffffff', outcome: 'ok' }, 0), {
          ok: false,
          reason: 'unknown_key',
        });
      });
    });

    describe('health: backoff, failures, probing', () => {
      const a = makeKeys(1, 'a')[0]!;
      const b = makeKeys(1, 'b')[0]!;
      const id = keyIdOf(a);
      const keyStats = async (p: PoolBackend, now: number) => (await p.stats(now)).keys.find((k) => k.keyId === id)!;

      it('rate_limited without retryAfter climbs the ladder 60 s, 2 min, 4 min; ok resets it', async () => {
        const clock = new FakeClock();
        const p = await make([a, b], {}, clock);
        const blockFor = async () => {
          const start = clock.now();
          await p.report({ keyId: id, outcome: 'rate_limited' }, start);
          const s = await keyStats(p, start);
          assert.equal(s.status, 'blocked');
          assert.equal(s.reason, 'reported rate_limited');
          clock.advance(s.until! - start);
          return s.until! - start;
        };
        assert.equal(await blockFor(), 60_000);
        assert.equal(await blockFor(), 120_000);
        assert.equal(await blockFor(), 240_000);
        await p.report({ keyId: id, outcome: 'ok' }, clock.now());
        assert.equal(await blockFor(), 60_000);
      });

      it('the ladder stops at maxBackoff', async () => {
        const clock = new FakeClock();
        const p = await make([a, b], { maxBackoffSec: 150 }, clock);
        const blocks: number[] = [];
        for (let i = 0; i < 4; i++) {
          await p.report({ keyId: id, status: 429 }, clock.now());
          const s = await keyStats(p, clock.now());
          blocks.push(s.until! - clock.now());
          assert.equal(s.reason, 'reported 429');
          clock.advance(s.until! - clock.now());
        }
        assert.deepEqual(blocks, [60_000, 120_000, 150_000, 150_000]);
      });

      it('one error does not block; maxFailures within failureWindow do; older ones fall out', async () => {
        const clock = new FakeClock();
        const p = await make([a, b], {}, clock);
        await p.report({ keyId: id, status: 503 }, clock.now());
        assert.equal((await keyStats(p, clock.now())).status, 'available');
        assert.equal((await keyStats(p, clock.now())).failures, 1);
        clock.advance(200_000);
        await p.report({ keyId: id, outcome: 'error' }, clock.now());
        clock.advance(101_000); // the first error is now older than 300 s
        await p.report({ keyId: id, status: 500 }, clock.now());
        assert.equal((await keyStats(p, clock.now())).status, 'available');
        await p.report({ keyId: id, status: 502 }, clock.now());
        const s = await keyStats(p, clock.now());
        assert.equal(s.status, 'blocked');
        assert.equal(s.until, clock.now() + 60_000);
        assert.equal(s.reason, '3 errors in 300s (last: reported 502)');
      });

      it('ok clears the failure count', async () => {
        const clock = new FakeClock();
        const p = await make([a, b], {}, clock);
        await p.report({ keyId: id, outcome: 'error' }, clock.now());
        await p.report({ keyId: id, outcome: 'error' }, clock.now());
        await p.report({ keyId: id, outcome: 'ok' }, clock.now());
        await p.report({ keyId: id, outcome: 'error' }, clock.now());
        assert.equal((await keyStats(p, clock.now())).status, 'available');
      });

      it('after a block the key probes: one handout, then healthy on ok or after probeTimeout, back up the ladder on a bad report', async () => {
        const clock = new FakeClock();
        const p = await make([a, b], { strategy: 'fill-first' }, clock);
        await p.report({ keyId: id, outcome: 'rate_limited' }, clock.now()); // 60 s, level 1
        clock.advance(60_000);
        assert.equal((await keyStats(p, clock.now())).status, 'probing');
        assert.deepEqual(await take(p, clock, 3), [a, b, b]); // one probe, then a sits out
        assert.equal((await keyStats(p, clock.now())).reason, 'probe in flight');
        await p.report({ keyId: id, outcome: 'rate_limited' }, clock.now()); // bad → 120 s
        assert.equal((await keyStats(p, clock.now())).until, clock.now() + 120_000);
        clock.advance(120_000);
        assert.deepEqual(await take(p, clock, 2), [a, b]);
        clock.advance(30_000); // no bad report within probeTimeout → healthy, ladder reset
        assert.deepEqual(await take(p, clock, 2), [a, a]);
        await p.report({ keyId: id, outcome: 'rate_limited' }, clock.now());
        assert.equal((await keyStats(p, clock.now())).until, clock.now() + 60_000);
      });

      it('an ok report ends probation at once', async () => {
        const clock = new FakeClock();
        const p = await make([a, b], { strategy: 'fill-first' }, clock);
        await p.report({ keyId: id, outcome: 'rate_limited', retryAfterSec: 1 }, clock.now());
        clock.advance(1000);
        assert.deepEqual(await take(p, clock, 2), [a, b]);
        await p.report({ keyId: id, outcome: 'ok' }, clock.now());
        assert.deepEqual(await take(p, clock, 2), [a, a]);
      });

      it('exhausted keeps the key out until its longest window resets', async () => {
        const clock = new FakeClock(Date.parse('2026-11-21T12:00:00Z'));
        const p = await make([a, b], { limits: { perMinute: 100, perDay: 1000 } }, clock);
        await p.report({ keyId: id, outcome: 'exhausted' }, clock.now());
        const s = await keyStats(p, clock.now());
        assert.deepEqual(
          [s.status, s.reason, s.until],
          ['exhausted', 'reported exhausted', Date.parse('2026-11-22T00:00:00Z')],
        );
        await p.report({ keyId: keyIdOf(b), status: 402 }, clock.now());
        assert.equal((await p.stats(clock.now())).keys[1]!.reason, 'reported 402 (quota)');
      });

      it('invalid names the upstream status', async () => {
        const clock = new FakeClock();
        const p = await make([a, b], {}, clock);
        await p.report({ keyId: id, status: 401 }, clock.now());
        const s = await keyStats(p, clock.now());
        assert.deepEqual([s.status, s.reason, s.until], ['disabled', 'invalid: 401', null]);
      });
    });

    describe('health: correlated throttling', () => {
      it('429s from more than half the keys within 10 s block the pool, not the keys', async () => {
        const clock = new FakeClock();
        const keys = makeKeys(4);
        const p = await make(keys, {}, clock);
        await p.report({ keyId: keyIdOf(keys[0]!), outcome: 'rate_limited', retryAfterSec: 20 }, clock.now());
        clock.advance(3000);
        await p.report({ keyId: keyIdOf(keys[1]!), outcome: 'rate_limited', retryAfterSec: 12 }, clock.now());
        assert.equal((await p.stats(clock.now())).blocked, 2);
        clock.advance(3000);
        await p.report({ keyId: keyIdOf(keys[2]!), outcome: 'rate_limited' }, clock.now());
        const st = await p.stats(clock.now());
        assert.equal(st.blocked, 0);
        assert.equal(st.available, 4);
        assert.equal(st.throttledUntil, clock.now() + 12_000);
        assert.deepEqual(await p.handout(clock.now()), { ok: false, reason: 'pool_throttled', retryAfterMs: 12_000 });
        // Late 429s for the same throttle do not mark keys either.
        await p.report({ keyId: keyIdOf(keys[3]!), outcome: 'rate_limited' }, clock.now());
        assert.equal((await p.stats(clock.now())).blocked, 0);
        clock.advance(12_000);
        assert.equal((await p.handout(clock.now())).ok, true);
      });

      it('without Retry-After the pool blocks for 30 s; 429s spread over more than 10 s block only keys', async () => {
        const clock = new FakeClock();
        const keys = makeKeys(3);
        const p = await make(keys, {}, clock);
        await p.report({ keyId: keyIdOf(keys[0]!), outcome: 'rate_limited' }, clock.now());
        clock.advance(10_001);
        await p.report({ keyId: keyIdOf(keys[1]!), outcome: 'rate_limited' }, clock.now());
        assert.equal((await p.stats(clock.now())).throttledUntil, null);
        assert.equal((await p.stats(clock.now())).blocked, 2);
        const q = await make(keys, {}, clock);
        await q.report({ keyId: keyIdOf(keys[0]!), outcome: 'rate_limited' }, clock.now());
        await q.report({ keyId: keyIdOf(keys[1]!), outcome: 'rate_limited' }, clock.now());
        assert.equal((await q.stats(clock.now())).throttledUntil, clock.now() + 30_000);
      });
    });

    describe('schedules: reset time zone and expiry', () => {
      it('perDay resets at midnight in resetTimezone (Pacific)', async () => {
        const clock = new FakeClock(Date.parse('2026-11-21T07:00:00Z')); // 23:00 PST on Nov 20
        const [a] = makeKeys(1);
        const p = await make([a!], { limits: { perDay: 1 }, resetTimezone: 'America/Los_Angeles' }, clock);
        await take(p, clock, 1);
        assert.deepEqual(await p.handout(clock.now()), {
          ok: false,
          reason: 'no_key_available',
          retryAfterMs: 3_600_000,
        });
        clock.set('2026-11-21T07:59:59.999Z');
        assert.equal((await p.handout(clock.now())).ok, false);
        clock.set('2026-11-21T08:00:00Z'); // midnight PST: a UTC-midnight pool would still be out
        assert.equal((await p.handout(clock.now())).ok, true);
      });

      it('perMonth resets on the 1st at local midnight, across DST', async () => {
        const clock = new FakeClock(Date.parse('2026-03-31T12:00:00Z'));
        const [a] = makeKeys(1);
        const p = await make([a!], { limits: { perMonth: 1 }, resetTimezone: 'America/Los_Angeles' }, clock);
        await take(p, clock, 1);
        assert.equal((await p.stats(clock.now())).keys[0]!.until, Date.parse('2026-04-01T07:00:00Z')); // PDT
      });

      it('a key past its expires= date leaves rotation as expired', async () => {
        const clock = new FakeClock(Date.parse('2027-01-31T23:00:00Z'));
        const [a, b] = makeKeys(2);
        const p = await make([`${a}  # expires=2027-01-31`, b!], {}, clock);
        assert.deepEqual(await take(p, clock, 2), [a, b]);
        clock.set('2027-02-01T00:00:00Z');
        assert.deepEqual(await take(p, clock, 2), [b, b]);
        const s = await p.stats(clock.now());
        assert.equal(s.expired, 1);
        assert.deepEqual(
          [s.keys[0]!.status, s.keys[0]!.reason, s.keys[0]!.until, s.keys[0]!.expiresAt],
          ['expired', 'expired', null, Date.parse('2027-01-31T23:59:59.999Z')],
        );
      });
    });

    describe('forecast', () => {
      it('exhaustsAt follows the last hour rate against the quota left, and moves with load', async () => {
        const clock = new FakeClock(Date.parse('2026-11-21T06:00:00Z'));
        const p = await make(makeKeys(3), { limits: { perDay: 100 } }, clock);
        assert.equal((await p.stats(clock.now())).exhaustsAt, null); // nothing handed out yet
        for (let m = 0; m < 60; m++) {
          await take(p, clock, 1); // 60 handouts over the hour: 1/min
          clock.advance(60_000);
        }
        // 300 - 60 = 240 left at 60/h → 4 h → 11:00Z, before the midnight reset.
        assert.equal((await p.stats(clock.now())).exhaustsAt, clock.now() + 240 * 60_000);
        await take(p, clock, 60); // a burst doubles the hour's rate: 120 handouts/h, 180 left → 1.5 h
        assert.equal((await p.stats(clock.now())).exhaustsAt, clock.now() + 90 * 60_000);
      });

      it('is null when the quota outlasts the window, and without limits', async () => {
        const clock = new FakeClock(Date.parse('2026-11-21T23:00:00Z'));
        const p = await make(makeKeys(2), { limits: { perDay: 1000 } }, clock);
        await take(p, clock, 10);
        assert.equal((await p.stats(clock.now())).exhaustsAt, null);
        const q = await make(makeKeys(2), {}, clock);
        await take(q, clock, 10);
        assert.equal((await q.stats(clock.now())).exhaustsAt, null);
      });
    });

    describe('leases (count > 1)', () => {
      it("grants up to the key's limits and the pool cap, counting every granted use", async () => {
        const clock = new FakeClock(Date.parse('2026-11-21T12:00:00Z'));
        const [a, b] = makeKeys(2);
        const p = await make([a!, b!], { strategy: 'fill-first', limits: { perMinute: 10 }, poolPerMinute: 15 }, clock);
        const first = (await p.handout(clock.now(), 8)) as Handout & { ok: true };
        assert.deepEqual([first.key, first.granted, first.remaining], [a, 8, 2]);
        const second = (await p.handout(clock.now(), 8)) as Handout & { ok: true };
        assert.deepEqual([second.key, second.granted, second.remaining], [a, 2, 0]);
        const third = (await p.handout(clock.now(), 8)) as Handout & { ok: true };
        assert.deepEqual([third.key, third.granted], [b, 5]); // pool cap 15 - 10 used
        assert.equal((await p.handout(clock.now(), 1)).ok, false);
        assert.deepEqual(
          (await p.stats(clock.now())).keys.map((k) => k.served.minute),
          [10, 5],
        );
      });

      it('a probing key is leased once only', async () => {
        const clock = new FakeClock();
        const [a, b] = makeKeys(2);
        const p = await make([a!, b!], { strategy: 'fill-first' }, clock);
        await p.report({ keyId: keyIdOf(a!), outcome: 'rate_limited', retryAfterSec: 1 }, clock.now());
        clock.advance(1000);
        const h = (await p.handout(clock.now(), 50)) as Handout & { ok: true };
        assert.deepEqual([h.key, h.granted], [a, 1]);
      });
    });

    describe("the upstream's verdicts (sync)", () => {
      const credits = (remainingDay: number | null, at: number) => ({
        remaining: { day: remainingDay, week: null, month: 900, total: null },
        used: { day: 3, week: null, month: 100, total: null },
        limits: { day: 100, week: null, month: 1000, total: null },
        syncedAt: at,
      });

      it('invalid takes the key out until a sync finds it fine; credits and upstreamSync show in stats', async () => {
        const clock = new FakeClock(Date.parse('2026-11-21T12:00:00Z'));
        const [a, b] = makeKeys(2);
        const p = await make([a!, b!], {}, clock);
        const r = await p.recordUpstream(
          {
            reached: true,
            keyId: keyIdOf(a!),
            finding: { status: 'invalid', reason: 'The specified api key is not active.' },
            credits: null,
          },
          clock.now(),
        );
        assert.deepEqual(r, { found: true, revived: false });
        let s = await p.stats(clock.now());
        assert.deepEqual(
          [s.keys[0]!.status, s.keys[0]!.reason, s.keys[0]!.until, s.invalid, s.available],
          ['invalid', 'upstream: The specified api key is not active.', null, 1, 1],
        );
        assert.deepEqual(await take(p, clock, 2), [b, b]);
        clock.advance(86_400_000 * 40); // an invalid key does not come back with time
        assert.deepEqual(await take(p, clock, 1), [b]);
        await p.recordUpstream(
          { reached: true, keyId: keyIdOf(b!), finding: null, credits: credits(97, clock.now()) },
          clock.now(),
        );
        assert.deepEqual(
          await p.recordUpstream(
            { reached: true, keyId: keyIdOf(a!), finding: null, credits: credits(40, clock.now()) },
            clock.now(),
          ),
          { found: true, revived: true },
        );
        s = await p.stats(clock.now());
        assert.deepEqual(
          [s.keys[0]!.status, s.keys[0]!.credits, s.creditsRemaining, s.upstreamSync],
          ['available', credits(40, clock.now()), 137, { ok: true, at: clock.now(), error: null }],
        );
        assert.deepEqual(
          await p.recordUpstream({ reached: true, keyId: '0123456789ab', finding: null, credits: null }, clock.now()),
          { found: false, revived: false },
        );
      });

      it("an exhaustion lasts until the window named resets in the pool's zone; total until a sync", async () => {
        const clock = new FakeClock(Date.parse('2026-11-21T12:00:00Z')); // a Saturday; 04:00 in Los Angeles
        const [a, b] = makeKeys(2);
        const p = await make([a!, b!], { resetTimezone: 'America/Los_Angeles' }, clock);
        await p.recordUpstream(
          {
            reached: true,
            keyId: keyIdOf(a!),
            finding: { status: 'exhausted', reason: 'day credit limit reached', window: 'day' },
            credits: credits(0, clock.now()),
          },
          clock.now(),
        );
        await p.recordUpstream(
          {
            reached: true,
            keyId: keyIdOf(b!),
            finding: { status: 'exhausted', reason: 'week credit limit reached', window: 'week' },
            credits: null,
          },
          clock.now(),
        );
        let s = await p.stats(clock.now());
        assert.deepEqual(
          s.keys.map((k) => [k.status, k.reason, k.until]),
          [
            ['exhausted', 'upstream: day credit limit reached', Date.parse('2026-11-22T08:00:00Z')],
            ['exhausted', 'upstream: week credit limit reached', Date.parse('2026-11-23T08:00:00Z')],
          ],
        );
        assert.deepEqual([s.creditsRemaining, (await p.handout(clock.now())).ok], [null, false]);
        clock.set('2026-11-22T08:00:00Z');
        assert.deepEqual(await take(p, clock, 2), [a, a]);
        await p.recordUpstream(
          {
            reached: true,
            keyId: keyIdOf(a!),
            finding: { status: 'exhausted', reason: 'no credits left', window: 'total' },
            credits: null,
          },
          clock.now(),
        );
        s = await p.stats(clock.now());
        assert.deepEqual([s.keys[0]!.status, s.keys[0]!.until], ['exhausted', null]);
        clock.set('2026-12-31T00:00:00Z');
        assert.deepEqual(await take(p, clock, 1), [b]);
      });

      it("a sync that finds a key fine lifts only the upstream's hold, not a report's or an operator's", async () => {
        const clock = new FakeClock();
        const [a, b, c] = makeKeys(3);
        const p = await make([a!, b!, c!], {}, clock);
        await p.report({ keyId: keyIdOf(a!), outcome: 'exhausted' }, clock.now());
        await p.admin('disable', keyIdOf(b!), clock.now(), 'by hand');
        for (const k of [a!, b!])
          assert.deepEqual(
            await p.recordUpstream({ reached: true, keyId: keyIdOf(k), finding: null, credits: null }, clock.now()),
            { found: true, revived: false },
          );
        const s = await p.stats(clock.now());
        assert.deepEqual(
          s.keys.map((k) => k.status),
          ['exhausted', 'disabled', 'available'],
        );
      });

      it('an unreachable upstream changes no key and shows in upstreamSync; enable lifts a hold until the next sync', async () => {
        const clock = new FakeClock();
        const [a, b] = makeKeys(2);
        const p = await make([a!, b!], {}, clock);
        await p.recordUpstream(
          {
            reached: true,
            keyId: keyIdOf(a!),
            finding: { status: 'invalid', reason: 'The specified api key not found.' },
            credits: null,
          },
          clock.now(),
        );
        clock.advance(1000);
        assert.deepEqual(await p.recordUpstream({ reached: false, error: 'timeout after 10000 ms' }, clock.now()), {
          found: true,
          revived: false,
        });
        let s = await p.stats(clock.now());
        assert.deepEqual(
          [s.keys[0]!.status, s.keys[1]!.status, s.upstreamSync],
          ['invalid', 'available', { ok: false, at: clock.now(), error: 'timeout after 10000 ms' }],
        );
        await p.admin('enable', keyIdOf(a!), clock.now());
        s = await p.stats(clock.now());
        assert.equal(s.keys[0]!.status, 'available');
      });

      it('the verdict and credits survive an export and a replace', async () => {
        const clock = new FakeClock();
        const [a, b] = makeKeys(2);
        const p = await make([a!, b!], {}, clock);
        await p.recordUpstream(
          {
            reached: true,
            keyId: keyIdOf(a!),
            finding: { status: 'invalid', reason: 'gone' },
            credits: credits(5, clock.now()),
          },
          clock.now(),
        );
        const exported = await p.exportState(clock.now());
        const q = await make([a!, b!], {}, clock);
        await q.replaceState(exported, clock.now());
        await q.setKeys(lines([a!, b!]), clock.now());
        const s = await q.stats(clock.now());
        assert.deepEqual(
          [s.keys[0]!.status, s.keys[0]!.credits, s.upstreamSync?.ok],
          ['invalid', credits(5, clock.now()), true],
        );
      });
    });

    describe('prices and pins (the proxy)', () => {
      it('a recount gives back uses from the total and the windows still current (a window that ended keeps its count), or adds them', async () => {
        const clock = new FakeClock(Date.parse('2026-11-21T12:00:10Z'));
        const [a, b] = makeKeys(2);
        const p = await make([a!, b!], { strategy: 'fill-first', limits: { perMinute: 3, perDay: 10 } }, clock);
        assert.deepEqual(await take(p, clock, 3), [a, a, a]);
        const early = clock.now();
        assert.equal(await p.recount(keyIdOf(a!), -2, early, clock.now()), true);
        assert.deepEqual((await row(p, clock, a!)).served, { minute: 1, hour: 1, day: 1, week: 1, month: 1, total: 1 });
        assert.deepEqual(await take(p, clock, 2), [a, a]); // the minute's limit has room again
        clock.set('2026-11-21T12:01:05Z');
        await take(p, clock, 1);
        assert.equal(await p.recount(keyIdOf(a!), -1, early, clock.now()), true); // the minute it was counted in ended
        assert.deepEqual((await row(p, clock, a!)).served, { minute: 1, hour: 3, day: 3, week: 3, month: 3, total: 3 });
        assert.equal(await p.recount(keyIdOf(a!), 4, clock.now(), clock.now()), true); // a call that cost 5, counted as 1
        assert.deepEqual((await row(p, clock, a!)).served, { minute: 5, hour: 7, day: 7, week: 7, month: 7, total: 7 });
        assert.equal((await row(p, clock, a!)).status, 'exhausted'); // perMinute 3
        assert.equal(await p.recount('ffffffffffff', -1, early, clock.now()), false);
      });

      it('keyStatus reads what a handout would see, null for a key not in the pool', async () => {
        const clock = new FakeClock();
        const [a, b, c] = makeKeys(3);
        const p = await make([a!, b!, c!], { limits: { total: 1 } }, clock);
        await p.admin('disable', keyIdOf(b!), clock.now(), 'test');
        await take(p, clock, 1);
        assert.deepEqual(await p.keyStatus([keyIdOf(a!), keyIdOf(b!), keyIdOf(c!), 'ffffffffffff'], clock.now()), [
          { status: 'exhausted', total: 1 },
          { status: 'disabled', total: 0 },
          { status: 'available', total: 0 },
          null,
        ]);
      });

      const plan = (
        limits: { day: number | null; total: number | null },
        used: { day: number | null; total: number | null },
        at: number,
      ) => ({
        remaining: { day: null, week: null, month: null, total: null },
        used: { ...used, week: null, month: null },
        limits: { ...limits, week: null, month: null },
        syncedAt: at,
      });

      it("upstream limits: a key is held to its plan's credit limits as synced, under the pool's own cap", async () => {
        const clock = new FakeClock(Date.parse('2026-11-21T12:00:10Z'));
        const [a, b] = makeKeys(2);
        const p = await make([a!, b!], { strategy: 'fill-first', upstreamLimits: true, limits: { perDay: 5 } }, clock);
        await p.recordUpstream(
          {
            reached: true,
            keyId: keyIdOf(a!),
            finding: null,
            credits: plan({ day: 3, total: 1000 }, { day: 0, total: 10 }, clock.now()),
          },
          clock.now(),
        );
        await p.recordUpstream(
          {
            reached: true,
            keyId: keyIdOf(b!),
            finding: null,
            credits: plan({ day: 50, total: null }, { day: 0, total: null }, clock.now()),
          },
          clock.now(),
        );
        assert.deepEqual(await take(p, clock, 8), [a, a, a, b, b, b, b, b]);
        assert.deepEqual(await p.handout(clock.now()), {
          ok: false,
          reason: 'no_key_available',
          retryAfterMs: Date.parse('2026-11-22T00:00:00Z') - clock.now(),
        });
        assert.deepEqual(
          [(await row(p, clock, a!)).reason, (await row(p, clock, b!)).reason],
          ['quota: perDay 3/3', 'quota: perDay 5/5'],
        );
      });

      it('upstream counts: a sync sets day and total to what the upstream used plus what was handed out while it was asked', async () => {
        const clock = new FakeClock(Date.parse('2026-11-21T12:00:10Z'));
        const [a] = makeKeys(1);
        const p = await make([a!], { upstreamLimits: true }, clock);
        await take(p, clock, 4);
        const before = 3; // one handout happened while the upstream was asked
        await p.recordUpstream(
          {
            reached: true,
            keyId: keyIdOf(a!),
            finding: null,
            credits: plan({ day: 10, total: null }, { day: 7, total: 40 }, clock.now()),
            servedBefore: before,
          },
          clock.now(),
        );
        const r = await row(p, clock, a!);
        assert.deepEqual([r.served.day, r.served.total, r.served.minute, r.remaining], [8, 41, 4, 2]);
        // A pool that does not take them keeps its own counts.
        const q = await make([a!], {}, clock);
        await take(q, clock, 2);
        await q.recordUpstream(
          {
            reached: true,
            keyId: keyIdOf(a!),
            finding: null,
            credits: plan({ day: 1, total: null }, { day: 7, total: 40 }, clock.now()),
            servedBefore: 0,
          },
          clock.now(),
        );
        const s = await row(q, clock, a!);
        assert.deepEqual([s.served.day, s.served.total, s.status], [2, 2, 'available']);
      });

      it('pins: the latest wins, they expire, and a removed key takes its pins with it', async () => {
        const clock = new FakeClock();
        const [a, b] = makeKeys(2);
        const p = await make([a!, b!], {}, clock);
        await p.pin(['tok1', '17'], keyIdOf(a!), clock.now());
        await p.pin(['17'], keyIdOf(b!), clock.now());
        assert.deepEqual(
          [
            await p.pinned('tok1', clock.now()),
            await p.pinned('17', clock.now()),
            await p.pinned('nope', clock.now()),
            await p.pinCount(),
          ],
          [keyIdOf(a!), keyIdOf(b!), null, 2],
        );
        await p.setKeys(lines([b!]), clock.now());
        assert.deepEqual([await p.pinned('tok1', clock.now()), await p.pinned('17', clock.now())], [null, keyIdOf(b!)]);
        clock.advance(190 * 86_400_000);
        assert.equal(await p.pinned('17', clock.now()), null);
      });
    });

    it('least-recently-used keeps its order across a reload of an unchanged key file (regression: the two engines diverged)', async () => {
      const clock = new FakeClock(); // one fixed clock: every handout in the same millisecond
      const [a, b, c] = makeKeys(3);
      const p = await make([a!, b!, c!], { strategy: 'least-recently-used' }, clock);
      assert.deepEqual(await take(p, clock, 4), [a, b, c, a]);
      await p.setKeys(lines([a!, b!, c!]), clock.now());
      assert.deepEqual(await take(p, clock, 3), [b, c, a]);
    });
  });
}
