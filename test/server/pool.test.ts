import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keyIdOf } from '../../shared/keys.js';
import { DEFAULT_POLICY, Pool, type Handout, type PoolPolicy } from '../../server/pool.js';
import { deserializeState, serializeState } from '../../server/state.js';
import { FakeClock } from '../helpers/clock.js';
import { lines, makeKeys } from '../helpers/keys.js';

function pool(keys: string[], policy: Partial<PoolPolicy> = {}, clock = new FakeClock(), rng?: () => number) {
  const p = new Pool('test', { ...DEFAULT_POLICY, ...policy }, { rng });
  p.setKeys(lines(keys), clock.now());
  return p;
}

function served(h: Handout): string {
  assert.equal(h.ok, true, `expected a key, got ${JSON.stringify(h)}`);
  return (h as Handout & { ok: true }).key;
}

function take(p: Pool, clock: FakeClock, n: number): string[] {
  return Array.from({ length: n }, () => served(p.handout(clock.now())));
}

describe('Pool selection', () => {
  it('round-robin hands keys out in file order, one each by default', () => {
    const clock = new FakeClock();
    const [a, b, c] = makeKeys(3);
    const p = pool([a!, b!, c!], {}, clock);
    assert.deepEqual(take(p, clock, 7), [a, b, c, a, b, c, a]);
  });

  it('round-robin with rotateEvery serves each key that many times, counting remaining down', () => {
    const clock = new FakeClock();
    const [a, b] = makeKeys(2);
    const p = pool([a!, b!], { rotateEvery: 3 }, clock);
    const got = Array.from({ length: 7 }, () => p.handout(clock.now()) as Handout & { ok: true });
    assert.deepEqual(got.map((h) => h.key), [a, a, a, b, b, b, a]);
    assert.deepEqual(got.map((h) => h.remaining), [2, 1, 0, 2, 1, 0, 2]);
  });

  it('fill-first stays on the first key until its limit, then moves on and returns after the reset', () => {
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:10Z'));
    const [a, b] = makeKeys(2);
    const p = pool([a!, b!], { strategy: 'fill-first', limits: { perMinute: 3 } }, clock);
    const got = Array.from({ length: 5 }, () => p.handout(clock.now()) as Handout & { ok: true });
    assert.deepEqual(got.map((h) => h.key), [a, a, a, b, b]);
    assert.deepEqual(got.map((h) => h.remaining), [2, 1, 0, 2, 1]);
    clock.set('2026-11-21T12:01:00Z');
    assert.equal(served(p.handout(clock.now())), a);
  });

  it('least-recently-used picks the key idle longest, including one back from a block', () => {
    const clock = new FakeClock();
    const [a, b, c] = makeKeys(3);
    const p = pool([a!, b!, c!], { strategy: 'least-recently-used' }, clock);
    assert.deepEqual(take(p, clock, 3), [a, b, c]);
    p.report({ keyId: keyIdOf(a!), outcome: 'rate_limited', retryAfterSec: 5 }, clock.now());
    assert.deepEqual(take(p, clock, 4), [b, c, b, c]);
    clock.advance(5000);
    assert.deepEqual(take(p, clock, 3), [a, b, c]);
  });

  it('random picks uniformly among usable keys through the injected rng', () => {
    const clock = new FakeClock();
    const [a, b, c] = makeKeys(3);
    const rolls = [0.99, 0.0, 0.5, 0.4];
    const p = pool([a!, b!, c!], { strategy: 'random' }, clock, () => rolls.shift()!);
    assert.deepEqual(take(p, clock, 3), [c, a, b]);
    p.disable(keyIdOf(a!), 'test', clock.now());
    assert.equal(served(p.handout(clock.now())), b); // 0.4 * 2 usable → second usable key... index 0 → b
  });
});

describe('Pool limits', () => {
  it('a key at perMinute is exhausted until the next minute; no key → retryAfter to the reset', () => {
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:15Z'));
    const [a, b] = makeKeys(2);
    const p = pool([a!, b!], { limits: { perMinute: 2 } }, clock);
    assert.deepEqual(take(p, clock, 4), [a, b, a, b]);
    assert.deepEqual(p.handout(clock.now()), { ok: false, reason: 'no_key_available', retryAfterMs: 45_000 });
    const stats = p.stats(clock.now());
    assert.equal(stats.exhausted, 2);
    assert.equal(stats.keys[0]!.reason, 'quota: perMinute 2/2');
    assert.equal(stats.keys[0]!.until, Date.parse('2026-11-21T12:01:00Z'));
    clock.set('2026-11-21T12:01:00Z');
    assert.deepEqual(take(p, clock, 2), [a, b]);
  });

  it('total never resets and gives no retryAfter', () => {
    const clock = new FakeClock();
    const [a] = makeKeys(1);
    const p = pool([a!], { limits: { total: 2 } }, clock);
    take(p, clock, 2);
    assert.deepEqual(p.handout(clock.now()), { ok: false, reason: 'no_key_available', retryAfterMs: null });
    clock.advance(40 * 86_400_000);
    assert.equal(p.handout(clock.now()).ok, false);
  });

  it('a key must be under every limit; it returns when all that were hit have reset', () => {
    const clock = new FakeClock(Date.parse('2026-11-21T23:59:30Z'));
    const [a] = makeKeys(1);
    const p = pool([a!], { limits: { perMinute: 1, perDay: 2 } }, clock);
    take(p, clock, 1);
    clock.set('2026-11-21T23:59:50Z');
    assert.equal(p.handout(clock.now()).ok, false);
    clock.set('2026-11-22T00:00:00Z');
    take(p, clock, 1);
    clock.set('2026-11-22T00:01:00Z');
    take(p, clock, 1);
    clock.set('2026-11-22T00:02:00Z');
    assert.deepEqual(p.handout(clock.now()), { ok: false, reason: 'no_key_available', retryAfterMs: Date.parse('2026-11-23T00:00:00Z') - clock.now() });
  });

  it('poolPerMinute caps handouts across keys with a pool_rate_limited answer', () => {
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:50Z'));
    const p = pool(makeKeys(5), { poolPerMinute: 3 }, clock);
    take(p, clock, 3);
    assert.deepEqual(p.handout(clock.now()), { ok: false, reason: 'pool_rate_limited', retryAfterMs: 10_000 });
    clock.advance(10_000);
    take(p, clock, 3);
  });

  it('remaining is min(turn left, limit left) and null when unbounded', () => {
    const clock = new FakeClock();
    const [a, b] = makeKeys(2);
    const unbounded = pool([a!, b!], { strategy: 'fill-first' }, clock);
    assert.equal((unbounded.handout(clock.now()) as Handout & { ok: true }).remaining, null);
    const p = pool([a!, b!], { rotateEvery: 10, limits: { perHour: 3 } }, clock);
    assert.deepEqual(
      Array.from({ length: 4 }, () => (p.handout(clock.now()) as Handout & { ok: true }).remaining),
      [2, 1, 0, 2],
    );
  });
});

describe('Pool membership and persistence', () => {
  it('reloading keeps counters of keys that stay, drops removed keys and resumes re-added ones', () => {
    const clock = new FakeClock();
    const [a, b, c] = makeKeys(3);
    const p = pool([a!, b!], { limits: { total: 3 } }, clock);
    take(p, clock, 4); // a,b,a,b
    const summary = p.setKeys(lines([b!, c!]), clock.now());
    assert.deepEqual(summary, { added: 1, removed: 1, kept: 1, reenabled: 0 });
    assert.deepEqual(take(p, clock, 3), [c, b, c]);
    assert.equal(p.stats(clock.now()).keys.find((k) => k.keyId === keyIdOf(b!))!.served.total, 3);
    p.setKeys(lines([a!, b!, c!]), clock.now());
    assert.equal(p.stats(clock.now()).keys.find((k) => k.keyId === keyIdOf(a!))!.served.total, 2);
  });

  it('a snapshot restored into a fresh pool resumes counters, windows, position and blocks', () => {
    const clock = new FakeClock();
    const [a, b, c] = makeKeys(3);
    const p = pool([a!, b!, c!], { rotateEvery: 2, limits: { perDay: 100 } }, clock);
    take(p, clock, 3); // a,a,b
    p.report({ keyId: keyIdOf(c!), outcome: 'rate_limited', retryAfterSec: 60 }, clock.now());
    const text = serializeState({ test: p.snapshot() }, clock.now());
    assert.doesNotMatch(text, new RegExp(`${a}|${b}|${c}`));

    const q = pool([a!, b!, c!], { rotateEvery: 2, limits: { perDay: 100 } }, clock);
    q.restore(deserializeState(text).state.pools.test!, clock.now());
    assert.deepEqual(take(q, clock, 3), [b, a, a]); // b finishes its turn, c is blocked
    const stats = q.stats(clock.now());
    assert.deepEqual(stats.keys.map((k) => k.served.day), [4, 2, 0]);
    assert.equal(stats.keys[2]!.status, 'blocked');
  });
});

describe('Pool reports', () => {
  it('rate_limited with retryAfter blocks for exactly that long', () => {
    const clock = new FakeClock();
    const [a, b] = makeKeys(2);
    const p = pool([a!, b!], {}, clock);
    p.report({ keyId: keyIdOf(a!), outcome: 'rate_limited', retryAfterSec: 42 }, clock.now());
    assert.deepEqual(take(p, clock, 2), [b, b]);
    clock.advance(41_999);
    assert.equal(served(p.handout(clock.now())), b);
    clock.advance(1);
    assert.equal(served(p.handout(clock.now())), a);
  });

  it('invalid disables until the line changes', () => {
    const clock = new FakeClock();
    const [a, b] = makeKeys(2);
    const p = pool([a!, b!], {}, clock);
    p.report({ keyId: keyIdOf(a!), outcome: 'invalid' }, clock.now());
    clock.advance(86_400_000);
    assert.deepEqual(take(p, clock, 2), [b, b]);
    p.setKeys(lines([a!, b!]), clock.now());
    assert.equal(p.stats(clock.now()).disabled, 1);
    assert.deepEqual(p.setKeys(lines([`${a}  # renewed`, b!]), clock.now()).reenabled, 1);
    assert.deepEqual(take(p, clock, 2).sort(), [a, b].sort());
  });

  it('an unknown keyId is reported as such', () => {
    const p = pool(makeKeys(1));
    assert.deepEqual(p.report({ keyId: 'ffffffffffff', outcome: 'ok' }, 0), { ok: false, reason: 'unknown_key' });
  });

  it('a 100,000-key pool rotates in order and finds the one usable key among blocked ones', () => {
    const clock = new FakeClock();
    const keys = makeKeys(100_000);
    const p = pool(keys, {}, clock);
    assert.deepEqual(take(p, clock, 3), keys.slice(0, 3));
    for (let i = 0; i < keys.length; i++) if (i !== 77_777) p.report({ keyId: keyIdOf(keys[i]!), outcome: 'invalid' }, clock.now());
    assert.deepEqual(take(p, clock, 2), [keys[77_777], keys[77_777]]);
    assert.equal(p.stats(clock.now(), { keys: false }).available, 1);
  });
});
