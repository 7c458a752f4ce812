/**
 * One suite, two stores: the rotation, limit and health rules run against the in-memory Pool
 * (file backend) and the RedisPool (a real redis-server), and must give the same results.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { keyIdOf } from '../../../shared/keys.js';
import { DEFAULT_POLICY, Pool, type Handout, type PoolBackend, type PoolPolicy } from '../../../server/pools/pool.js';
import { RedisPool, withPoolScript } from '../../../server/redis/pool.js';
import { FakeClock } from '../../helpers/clock.js';
import { lines, makeKeys } from '../../helpers/keys.js';
import { REDIS_MISSING, redisServerBinary, TestRedis } from '../../helpers/redis.js';

type Make = (keys: string[], policy?: Partial<PoolPolicy>, clock?: FakeClock, rng?: () => number) => Promise<PoolBackend>;

let prefixSeq = 0;

function shared(label: string, setup: () => Promise<Make | null>, teardown: () => Promise<void>) {
  describe(`core rules on the ${label} store`, () => {
    let make: Make;
    let skip: string | false = false;
    before(async () => {
      const m = await setup();
      if (m) make = m;
      else skip = REDIS_MISSING;
    });
    after(teardown);

    const served = (h: Handout): string => {
      assert.equal(h.ok, true, `expected a key, got ${JSON.stringify(h)}`);
      return (h as Handout & { ok: true }).key;
    };
    const take = async (p: PoolBackend, clock: FakeClock, n: number) => {
      const out: string[] = [];
      for (let i = 0; i < n; i++) out.push(served(await p.handout(clock.now())));
      return out;
    };
    const row = async (p: PoolBackend, clock: FakeClock, key: string) => (await p.stats(clock.now())).keys.find((k) => k.keyId === keyIdOf(key))!;

    it('round-robin in file order, rotateEvery turns with remaining counting down', async (t) => {
      if (skip) return t.skip(skip);
      const clock = new FakeClock();
      const [a, b, c] = makeKeys(3);
      assert.deepEqual(await take(await make([a!, b!, c!], {}, clock), clock, 4), [a, b, c, a]);
      const p = await make([a!, b!], { rotateEvery: 3 }, clock);
      const got: Array<Handout & { ok: true }> = [];
      for (let i = 0; i < 7; i++) got.push((await p.handout(clock.now())) as Handout & { ok: true });
      assert.deepEqual(got.map((h) => h.key), [a, a, a, b, b, b, a]);
      assert.deepEqual(got.map((h) => h.remaining), [2, 1, 0, 2, 1, 0, 2]);
    });

    it('fill-first stays on the first key until its limit and returns after the reset', async (t) => {
      if (skip) return t.skip(skip);
      const clock = new FakeClock(Date.parse('2026-11-21T12:00:10Z'));
      const [a, b] = makeKeys(2);
      const p = await make([a!, b!], { strategy: 'fill-first', limits: { perMinute: 3 } }, clock);
      assert.deepEqual(await take(p, clock, 5), [a, a, a, b, b]);
      clock.set('2026-11-21T12:01:00Z');
      assert.deepEqual(await take(p, clock, 1), [a]);
    });

    it('least-recently-used, including a key back from a block; random through the rng', async (t) => {
      if (skip) return t.skip(skip);
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

    it('limits: perMinute with retryAfter, total never resets, pool cap is pool_rate_limited', async (t) => {
      if (skip) return t.skip(skip);
      const clock = new FakeClock(Date.parse('2026-11-21T12:00:15Z'));
      const [a, b] = makeKeys(2);
      const p = await make([a!, b!], { limits: { perMinute: 2 } }, clock);
      assert.deepEqual(await take(p, clock, 4), [a, b, a, b]);
      assert.deepEqual(await p.handout(clock.now()), { ok: false, reason: 'no_key_available', retryAfterMs: 45_000 });
      assert.deepEqual([(await row(p, clock, a!)).reason, (await row(p, clock, a!)).until], ['quota: perMinute 2/2', Date.parse('2026-11-21T12:01:00Z')]);
      const q = await make([a!], { limits: { total: 2 } }, clock);
      await take(q, clock, 2);
      clock.advance(40 * 86_400_000);
      assert.deepEqual(await q.handout(clock.now()), { ok: false, reason: 'no_key_available', retryAfterMs: null });
      const capped = await make(makeKeys(4), { poolPerMinute: 3 }, clock);
      await take(capped, clock, 3);
      assert.equal(((await capped.handout(clock.now())) as { reason: string }).reason, 'pool_rate_limited');
    });

    it('perDay resets at Pacific midnight', async (t) => {
      if (skip) return t.skip(skip);
      const clock = new FakeClock(Date.parse('2026-11-21T07:00:00Z'));
      const [a] = makeKeys(1);
      const p = await make([a!], { limits: { perDay: 1 }, resetTimezone: 'America/Los_Angeles' }, clock);
      await take(p, clock, 1);
      assert.deepEqual(await p.handout(clock.now()), { ok: false, reason: 'no_key_available', retryAfterMs: 3_600_000 });
      clock.set('2026-11-21T08:00:00Z');
      assert.equal((await p.handout(clock.now())).ok, true);
    });

    it('leases are cut to the limits and the pool cap', async (t) => {
      if (skip) return t.skip(skip);
      const clock = new FakeClock(Date.parse('2026-11-21T12:00:00Z'));
      const [a, b] = makeKeys(2);
      const p = await make([a!, b!], { strategy: 'fill-first', limits: { perMinute: 10 }, poolPerMinute: 15 }, clock);
      const g = [];
      for (const want of [8, 8, 8]) g.push(((await p.handout(clock.now(), want)) as Handout & { ok: true }).granted);
      assert.deepEqual(g, [8, 2, 5]);
    });

    it('Retry-After exact; backoff ladder 60 s, 2 min, then reset by ok; probing one caller', async (t) => {
      if (skip) return t.skip(skip);
      const clock = new FakeClock();
      const [a, b] = makeKeys(2);
      const p = await make([a!, b!], { strategy: 'fill-first' }, clock);
      await p.report({ keyId: keyIdOf(a!), status: 429, retryAfterSec: 17 }, clock.now());
      assert.deepEqual([(await row(p, clock, a!)).until, (await row(p, clock, a!)).reason], [clock.now() + 17_000, 'reported 429']);
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

    it('one error does not block; three within the window do; invalid disables until the line changes', async (t) => {
      if (skip) return t.skip(skip);
      const clock = new FakeClock();
      const [a, b] = makeKeys(2);
      const p = await make([a!, b!], {}, clock);
      await p.report({ keyId: keyIdOf(a!), status: 503 }, clock.now());
      assert.deepEqual([(await row(p, clock, a!)).status, (await row(p, clock, a!)).failures], ['available', 1]);
      await p.report({ keyId: keyIdOf(a!), status: 500 }, clock.now());
      await p.report({ keyId: keyIdOf(a!), outcome: 'error' }, clock.now());
      const r = await row(p, clock, a!);
      assert.deepEqual([r.status, r.until, r.reason], ['blocked', clock.now() + 60_000, '3 errors in 300s (last: reported error)']);
      await p.report({ keyId: keyIdOf(b!), status: 401 }, clock.now());
      assert.deepEqual([(await row(p, clock, b!)).status, (await row(p, clock, b!)).reason], ['disabled', 'invalid: 401']);
      assert.deepEqual((await p.setKeys(lines([a!, `${b}  # renewed`]), clock.now())).reenabled, 1);
      assert.equal((await row(p, clock, b!)).status, 'available');
      assert.deepEqual(await p.report({ keyId: 'ffffffffffff', outcome: 'ok' }, clock.now()), { ok: false, reason: 'unknown_key' });
    });

    it('correlated 429s throttle the pool and leave the keys unmarked', async (t) => {
      if (skip) return t.skip(skip);
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

    it('reloads keep counters and blocks; removed keys leave; re-added keys resume', async (t) => {
      if (skip) return t.skip(skip);
      const clock = new FakeClock();
      const [a, b, c] = makeKeys(3);
      const p = await make([a!, b!], { limits: { total: 3 } }, clock);
      await take(p, clock, 4);
      assert.deepEqual(await p.setKeys(lines([b!, c!]), clock.now()), { added: 1, removed: 1, kept: 1, reenabled: 0 });
      assert.deepEqual(await take(p, clock, 3), [c, b, c]);
      assert.equal((await row(p, clock, b!)).served.total, 3);
      await p.setKeys(lines([a!, b!, c!]), clock.now());
      assert.equal((await row(p, clock, a!)).served.total, 2);
    });
  });
}

shared(
  'memory (file backend)',
  async () => async (keys, policy = {}, clock = new FakeClock(), rng) => {
    const p = new Pool('test', { ...DEFAULT_POLICY, ...policy }, { rng });
    p.setKeys(lines(keys), clock.now());
    return p;
  },
  async () => {},
);

const redis = new TestRedis();
let client: Redis | null = null;
shared(
  'Redis',
  async () => {
    if (!redisServerBinary()) {
      if (process.env.CI) throw new Error(REDIS_MISSING);
      return null;
    }
    await redis.start();
    client = new Redis(redis.url);
    const c = withPoolScript(client);
    return async (keys, policy = {}, clock = new FakeClock(), rng) => {
      const p = new RedisPool('test', { ...DEFAULT_POLICY, ...policy }, c, `kwtest${++prefixSeq}:`, { rng });
      await p.setKeys(lines(keys), clock.now());
      return p;
    };
  },
  async () => {
    client?.disconnect();
    await redis.destroy();
  },
);
