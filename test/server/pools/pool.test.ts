import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keyIdOf } from '../../../shared/keys.js';
import { DEFAULT_POLICY, msText, Pool, type Handout, type PoolPolicy, type PoolState } from '../../../server/pools/pool.js';
import { deserializeState, STATE_VERSION } from '../../../server/state/format.js';
import { WINDOW_KINDS } from '../../../server/pools/windows.js';
import { FakeClock } from '../../helpers/clock.js';
import { lines, makeKeys } from '../../helpers/keys.js';

function pool(keys: string[], policy: Partial<PoolPolicy> = {}, clock = new FakeClock(), rng?: () => number) {
  const p = new Pool('test', { ...DEFAULT_POLICY, ...policy }, { rng });
  p.setKeys(lines(keys), clock.now());
  return p;
}

/** A state file holding one pool, written by the pool itself (as a save does). */
function saveText(p: Pool, now: number, name = 'test'): string {
  return `{"version":${STATE_VERSION},"savedAt":${now},"seq":1,"pools":{"${name}":${[...p.serializeChunks(now, 2)].join('')}}}`;
}

/** A snapshot as the state file keeps it at `now`: counts of windows that have ended are gone. */
function asOf(p: Pool, st: PoolState, now: number): PoolState {
  const keys: PoolState['keys'] = {};
  for (const [keyId, k] of Object.entries(st.keys)) {
    const windows: PoolState['keys'][string]['windows'] = {};
    for (const kind of WINDOW_KINDS) {
      const c = k.windows[kind];
      if (c && c.count > 0 && c.start === p.clock.bounds(kind, now).startMs) windows[kind] = c;
    }
    keys[keyId] = { ...k, windows };
  }
  return { ...st, keys };
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

  it('every window count, total and last use follows its key when a reload moves the keys to other slots', () => {
    const clock = new FakeClock();
    const keys = makeKeys(5);
    const p = pool(keys, { limits: { perMinute: 100, perDay: 100 } }, clock);
    for (let i = 0; i < 5; i++) {
      p.handout(clock.now(), i + 1); // key i: a lease of i + 1 uses, at its own time
      clock.advance(1000);
    }
    const served = (q: Pool) => Object.fromEntries(q.stats(clock.now()).keys.map((k) => [k.keyId, { served: k.served, lastUsedAt: k.lastUsedAt }]));
    const before = served(p);
    assert.deepEqual(keys.map((k) => before[keyIdOf(k)]!.served.day), [1, 2, 3, 4, 5]);
    p.setKeys(lines([...keys].reverse()), clock.now()); // every key moves
    assert.deepEqual(served(p), before);
    p.setKeys(lines(keys.slice(2)), clock.now()); // two retired
    p.setKeys(lines([keys[4]!, keys[0]!, keys[2]!, keys[1]!, keys[3]!]), clock.now()); // and back, in another order
    assert.deepEqual(served(p), before);
    clock.advance(60_000); // the minute window ended for all; the day window did not
    for (const k of p.stats(clock.now()).keys) {
      assert.equal(k.served.minute, 0);
      assert.equal(k.served.day, before[k.keyId]!.served.day);
    }
  });

  it('a snapshot restored into a fresh pool resumes counters, windows, position and blocks', () => {
    const clock = new FakeClock();
    const [a, b, c] = makeKeys(3);
    const p = pool([a!, b!, c!], { rotateEvery: 2, limits: { perDay: 100 } }, clock);
    take(p, clock, 3); // a,a,b
    p.report({ keyId: keyIdOf(c!), outcome: 'rate_limited', retryAfterSec: 60 }, clock.now());
    const text = saveText(p, clock.now());
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
    assert.equal(p.stats(clock.now(), { keys: 'none' }).available, 1);
  });
});

describe('Pool health: backoff, failures, probing', () => {
  const a = makeKeys(1, 'a')[0]!;
  const b = makeKeys(1, 'b')[0]!;
  const id = keyIdOf(a);
  const keyStats = (p: Pool, now: number) => p.stats(now).keys.find((k) => k.keyId === id)!;

  it('rate_limited without retryAfter climbs the ladder 60 s, 2 min, 4 min; ok resets it', () => {
    const clock = new FakeClock();
    const p = pool([a, b], {}, clock);
    const blockFor = () => {
      const start = clock.now();
      p.report({ keyId: id, outcome: 'rate_limited' }, start);
      const s = keyStats(p, start);
      assert.equal(s.status, 'blocked');
      assert.equal(s.reason, 'reported rate_limited');
      clock.advance(s.until! - start);
      return s.until! - start;
    };
    assert.equal(blockFor(), 60_000);
    assert.equal(blockFor(), 120_000);
    assert.equal(blockFor(), 240_000);
    p.report({ keyId: id, outcome: 'ok' }, clock.now());
    assert.equal(blockFor(), 60_000);
  });

  it('the ladder stops at maxBackoff', () => {
    const clock = new FakeClock();
    const p = pool([a, b], { maxBackoffSec: 150 }, clock);
    const blocks: number[] = [];
    for (let i = 0; i < 4; i++) {
      p.report({ keyId: id, status: 429 }, clock.now());
      const s = keyStats(p, clock.now());
      blocks.push(s.until! - clock.now());
      assert.equal(s.reason, 'reported 429');
      clock.advance(s.until! - clock.now());
    }
    assert.deepEqual(blocks, [60_000, 120_000, 150_000, 150_000]);
  });

  it('one error does not block; maxFailures within failureWindow do; older ones fall out', () => {
    const clock = new FakeClock();
    const p = pool([a, b], {}, clock);
    p.report({ keyId: id, status: 503 }, clock.now());
    assert.equal(keyStats(p, clock.now()).status, 'available');
    assert.equal(keyStats(p, clock.now()).failures, 1);
    clock.advance(200_000);
    p.report({ keyId: id, outcome: 'error' }, clock.now());
    clock.advance(101_000); // the first error is now older than 300 s
    p.report({ keyId: id, status: 500 }, clock.now());
    assert.equal(keyStats(p, clock.now()).status, 'available');
    p.report({ keyId: id, status: 502 }, clock.now());
    const s = keyStats(p, clock.now());
    assert.equal(s.status, 'blocked');
    assert.equal(s.until, clock.now() + 60_000);
    assert.equal(s.reason, '3 errors in 300s (last: reported 502)');
  });

  it('ok clears the failure count', () => {
    const clock = new FakeClock();
    const p = pool([a, b], {}, clock);
    p.report({ keyId: id, outcome: 'error' }, clock.now());
    p.report({ keyId: id, outcome: 'error' }, clock.now());
    p.report({ keyId: id, outcome: 'ok' }, clock.now());
    p.report({ keyId: id, outcome: 'error' }, clock.now());
    assert.equal(keyStats(p, clock.now()).status, 'available');
  });

  it('after a block the key probes: one handout, then healthy on ok or after probeTimeout, back up the ladder on a bad report', () => {
    const clock = new FakeClock();
    const p = pool([a, b], { strategy: 'fill-first' }, clock);
    p.report({ keyId: id, outcome: 'rate_limited' }, clock.now()); // 60 s, level 1
    clock.advance(60_000);
    assert.equal(keyStats(p, clock.now()).status, 'probing');
    assert.deepEqual(take(p, clock, 3), [a, b, b]); // one probe, then a sits out
    assert.equal(keyStats(p, clock.now()).reason, 'probe in flight');
    p.report({ keyId: id, outcome: 'rate_limited' }, clock.now()); // bad → 120 s
    assert.equal(keyStats(p, clock.now()).until, clock.now() + 120_000);
    clock.advance(120_000);
    assert.deepEqual(take(p, clock, 2), [a, b]);
    clock.advance(30_000); // no bad report within probeTimeout → healthy, ladder reset
    assert.deepEqual(take(p, clock, 2), [a, a]);
    p.report({ keyId: id, outcome: 'rate_limited' }, clock.now());
    assert.equal(keyStats(p, clock.now()).until, clock.now() + 60_000);
  });

  it('an ok report ends probation at once', () => {
    const clock = new FakeClock();
    const p = pool([a, b], { strategy: 'fill-first' }, clock);
    p.report({ keyId: id, outcome: 'rate_limited', retryAfterSec: 1 }, clock.now());
    clock.advance(1000);
    assert.deepEqual(take(p, clock, 2), [a, b]);
    p.report({ keyId: id, outcome: 'ok' }, clock.now());
    assert.deepEqual(take(p, clock, 2), [a, a]);
  });

  it('exhausted keeps the key out until its longest window resets', () => {
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:00Z'));
    const p = pool([a, b], { limits: { perMinute: 100, perDay: 1000 } }, clock);
    p.report({ keyId: id, outcome: 'exhausted' }, clock.now());
    const s = keyStats(p, clock.now());
    assert.deepEqual([s.status, s.reason, s.until], ['exhausted', 'reported exhausted', Date.parse('2026-11-22T00:00:00Z')]);
    p.report({ keyId: keyIdOf(b), status: 402 }, clock.now());
    assert.equal(p.stats(clock.now()).keys[1]!.reason, 'reported 402 (quota)');
  });

  it('invalid names the upstream status', () => {
    const clock = new FakeClock();
    const p = pool([a, b], {}, clock);
    p.report({ keyId: id, status: 401 }, clock.now());
    const s = keyStats(p, clock.now());
    assert.deepEqual([s.status, s.reason, s.until], ['disabled', 'invalid: 401', null]);
  });
});

describe('Pool health: correlated throttling', () => {
  it('429s from more than half the keys within 10 s block the pool, not the keys', () => {
    const clock = new FakeClock();
    const keys = makeKeys(4);
    const p = pool(keys, {}, clock);
    p.report({ keyId: keyIdOf(keys[0]!), outcome: 'rate_limited', retryAfterSec: 20 }, clock.now());
    clock.advance(3000);
    p.report({ keyId: keyIdOf(keys[1]!), outcome: 'rate_limited', retryAfterSec: 12 }, clock.now());
    assert.equal(p.stats(clock.now()).blocked, 2);
    clock.advance(3000);
    p.report({ keyId: keyIdOf(keys[2]!), outcome: 'rate_limited' }, clock.now());
    const st = p.stats(clock.now());
    assert.equal(st.blocked, 0);
    assert.equal(st.available, 4);
    assert.equal(st.throttledUntil, clock.now() + 12_000);
    assert.deepEqual(p.handout(clock.now()), { ok: false, reason: 'pool_throttled', retryAfterMs: 12_000 });
    // Late 429s for the same throttle do not mark keys either.
    p.report({ keyId: keyIdOf(keys[3]!), outcome: 'rate_limited' }, clock.now());
    assert.equal(p.stats(clock.now()).blocked, 0);
    clock.advance(12_000);
    assert.equal(p.handout(clock.now()).ok, true);
  });

  it('without Retry-After the pool blocks for 30 s; 429s spread over more than 10 s block only keys', () => {
    const clock = new FakeClock();
    const keys = makeKeys(3);
    const p = pool(keys, {}, clock);
    p.report({ keyId: keyIdOf(keys[0]!), outcome: 'rate_limited' }, clock.now());
    clock.advance(10_001);
    p.report({ keyId: keyIdOf(keys[1]!), outcome: 'rate_limited' }, clock.now());
    assert.equal(p.stats(clock.now()).throttledUntil, null);
    assert.equal(p.stats(clock.now()).blocked, 2);
    const q = pool(keys, {}, clock);
    q.report({ keyId: keyIdOf(keys[0]!), outcome: 'rate_limited' }, clock.now());
    q.report({ keyId: keyIdOf(keys[1]!), outcome: 'rate_limited' }, clock.now());
    assert.equal(q.stats(clock.now()).throttledUntil, clock.now() + 30_000);
  });

  it('the pool throttle persists', () => {
    const clock = new FakeClock();
    const keys = makeKeys(2);
    const p = pool(keys, {}, clock);
    for (const k of keys) p.report({ keyId: keyIdOf(k), outcome: 'rate_limited', retryAfterSec: 5 }, clock.now());
    const q = pool(keys, {}, clock);
    q.restore(deserializeState(saveText(p, clock.now())).state.pools.test!, clock.now());
    assert.equal(q.handout(clock.now()).ok, false);
    assert.equal(q.stats(clock.now()).throttledUntil, clock.now() + 5000);
  });
});

describe('Pool schedules: reset time zone and expiry', () => {
  it('perDay resets at midnight in resetTimezone (Pacific)', () => {
    const clock = new FakeClock(Date.parse('2026-11-21T07:00:00Z')); // 23:00 PST on Nov 20
    const [a] = makeKeys(1);
    const p = pool([a!], { limits: { perDay: 1 }, resetTimezone: 'America/Los_Angeles' }, clock);
    take(p, clock, 1);
    assert.deepEqual(p.handout(clock.now()), { ok: false, reason: 'no_key_available', retryAfterMs: 3_600_000 });
    clock.set('2026-11-21T07:59:59.999Z');
    assert.equal(p.handout(clock.now()).ok, false);
    clock.set('2026-11-21T08:00:00Z'); // midnight PST: a UTC-midnight pool would still be out
    assert.equal(p.handout(clock.now()).ok, true);
  });

  it('perMonth resets on the 1st at local midnight, across DST', () => {
    const clock = new FakeClock(Date.parse('2026-03-31T12:00:00Z'));
    const [a] = makeKeys(1);
    const p = pool([a!], { limits: { perMonth: 1 }, resetTimezone: 'America/Los_Angeles' }, clock);
    take(p, clock, 1);
    assert.equal(p.stats(clock.now()).keys[0]!.until, Date.parse('2026-04-01T07:00:00Z')); // PDT
  });

  it('a key past its expires= date leaves rotation as expired', () => {
    const clock = new FakeClock(Date.parse('2027-01-31T23:00:00Z'));
    const [a, b] = makeKeys(2);
    const p = new Pool('t', DEFAULT_POLICY);
    p.setKeys(lines([`${a}  # expires=2027-01-31`, b!]), clock.now());
    assert.deepEqual(take(p, clock, 2), [a, b]);
    clock.set('2027-02-01T00:00:00Z');
    assert.deepEqual(take(p, clock, 2), [b, b]);
    const s = p.stats(clock.now());
    assert.equal(s.expired, 1);
    assert.deepEqual([s.keys[0]!.status, s.keys[0]!.reason, s.keys[0]!.until, s.keys[0]!.expiresAt], ['expired', 'expired', null, Date.parse('2027-01-31T23:59:59.999Z')]);
  });
});

describe('Pool forecast', () => {
  it('exhaustsAt follows the last hour rate against the quota left, and moves with load', () => {
    const clock = new FakeClock(Date.parse('2026-11-21T06:00:00Z'));
    const p = pool(makeKeys(3), { limits: { perDay: 100 } }, clock);
    assert.equal(p.stats(clock.now()).exhaustsAt, null); // nothing handed out yet
    for (let m = 0; m < 60; m++) {
      take(p, clock, 1); // 60 handouts over the hour: 1/min
      clock.advance(60_000);
    }
    // 300 - 60 = 240 left at 60/h → 4 h → 11:00Z, before the midnight reset.
    assert.equal(p.stats(clock.now()).exhaustsAt, clock.now() + 240 * 60_000);
    take(p, clock, 60); // a burst doubles the hour's rate: 120 handouts/h, 180 left → 1.5 h
    assert.equal(p.stats(clock.now()).exhaustsAt, clock.now() + 90 * 60_000);
  });

  it('is null when the quota outlasts the window, and without limits', () => {
    const clock = new FakeClock(Date.parse('2026-11-21T23:00:00Z'));
    const p = pool(makeKeys(2), { limits: { perDay: 1000 } }, clock);
    take(p, clock, 10);
    assert.equal(p.stats(clock.now()).exhaustsAt, null);
    const q = pool(makeKeys(2), {}, clock);
    take(q, clock, 10);
    assert.equal(q.stats(clock.now()).exhaustsAt, null);
  });
});

describe('Pool health persists', () => {
  it('backoff rung, failure count, probation and the forecast history survive a snapshot round trip', () => {
    const clock = new FakeClock(Date.parse('2026-11-21T10:00:00Z'));
    const [a, b, c] = makeKeys(3);
    const policy = { limits: { perDay: 100 } };
    const p = pool([a!, b!, c!], policy, clock);
    take(p, clock, 30);
    p.report({ keyId: keyIdOf(a!), outcome: 'rate_limited' }, clock.now()); // rung 1
    p.report({ keyId: keyIdOf(b!), outcome: 'error' }, clock.now());
    p.report({ keyId: keyIdOf(b!), outcome: 'error' }, clock.now());
    const before = p.stats(clock.now());
    const q = pool([a!, b!, c!], policy, clock);
    q.restore(deserializeState(saveText(p, clock.now())).state.pools.test!, clock.now());
    assert.deepEqual(q.stats(clock.now()), before);
    clock.advance(60_000);
    q.report({ keyId: keyIdOf(b!), outcome: 'error' }, clock.now()); // third error in the window → blocked
    assert.equal(q.stats(clock.now()).keys[1]!.status, 'blocked');
    assert.deepEqual(take(q, clock, 1), [a]); // a's probe
    q.report({ keyId: keyIdOf(a!), outcome: 'rate_limited' }, clock.now()); // rung 2: 120 s
    assert.equal(q.stats(clock.now()).keys[0]!.until, clock.now() + 120_000);
  });
});

describe('Pool leases (count > 1)', () => {
  it('grants up to the key\'s limits and the pool cap, counting every granted use', () => {
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:00Z'));
    const [a, b] = makeKeys(2);
    const p = pool([a!, b!], { strategy: 'fill-first', limits: { perMinute: 10 }, poolPerMinute: 15 }, clock);
    const first = p.handout(clock.now(), 8) as Handout & { ok: true };
    assert.deepEqual([first.key, first.granted, first.remaining], [a, 8, 2]);
    const second = p.handout(clock.now(), 8) as Handout & { ok: true };
    assert.deepEqual([second.key, second.granted, second.remaining], [a, 2, 0]);
    const third = p.handout(clock.now(), 8) as Handout & { ok: true };
    assert.deepEqual([third.key, third.granted], [b, 5]); // pool cap 15 - 10 used
    assert.equal(p.handout(clock.now(), 1).ok, false);
    assert.deepEqual(p.stats(clock.now()).keys.map((k) => k.served.minute), [10, 5]);
  });

  it('a probing key is leased once only', () => {
    const clock = new FakeClock();
    const [a, b] = makeKeys(2);
    const p = pool([a!, b!], { strategy: 'fill-first' }, clock);
    p.report({ keyId: keyIdOf(a!), outcome: 'rate_limited', retryAfterSec: 1 }, clock.now());
    clock.advance(1000);
    const h = p.handout(clock.now(), 50) as Handout & { ok: true };
    assert.deepEqual([h.key, h.granted], [a, 1]);
  });
});

describe('Pool incremental serialisation', () => {
  it('what serializeChunks writes reads back as snapshot(), whatever happened in between; format 1 of the same snapshot reads the same', () => {
    const clock = new FakeClock(Date.parse('2026-11-21T23:59:00Z'));
    const keys = makeKeys(6);
    const p = pool(keys.slice(0, 5), { limits: { perMinute: 3, total: 40 } }, clock);
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const outcomes = ['ok', 'rate_limited', 'exhausted', 'invalid', 'error'] as const;
    for (let step = 0; step < 400; step++) {
      const k = keys[rand(6)]!;
      switch (rand(8)) {
        case 0:
        case 1:
        case 2:
          p.handout(clock.now(), 1 + rand(3));
          break;
        case 3:
          p.report({ keyId: keyIdOf(k), outcome: outcomes[rand(5)]!, ...(rand(2) ? { retryAfterSec: rand(30) } : {}) }, clock.now());
          break;
        case 4:
          clock.advance(rand(90_000));
          p.stats(clock.now()); // settles blocks and probes
          break;
        case 5:
          p.setKeys(lines(keys.filter(() => rand(4) > 0)), clock.now());
          break;
        case 6:
          [() => p.disable(keyIdOf(k), 'x', clock.now()), () => p.enable(keyIdOf(k), clock.now()), () => p.resetCounters(keyIdOf(k), clock.now())][rand(3)]!();
          break;
        case 7:
          break;
      }
      const now = clock.now();
      const expected = asOf(p, p.snapshot(), now);
      assert.deepEqual(deserializeState(saveText(p, now)).state.pools.test, expected, `step ${step}`);
      const v1 = JSON.stringify({ version: 1, savedAt: now, seq: 1, pools: { test: p.snapshot() } });
      assert.deepEqual(asOf(p, deserializeState(v1).state.pools.test!, now), expected, `step ${step} (format 1)`);
    }
  });
});

describe('msText', () => {
  it('formats like String() for every kind of number a state file holds', () => {
    const samples = [0, 1, 59_999, 999_999, 1_000_000, 1_000_001, 1_000_000_000, 1_763_763_725_123, 1_763_763_000_001, 1_763_763_100_000, 2 ** 53 - 1, 2 ** 53, -5, 1.5, 1e21];
    let x = 1_763_000_000_000;
    for (let i = 0; i < 2000; i++) samples.push((x += 1 + ((i * 7919) % 1_000_003)));
    for (const ms of samples) assert.equal(msText(ms), String(ms), `${ms}`);
  });
});
