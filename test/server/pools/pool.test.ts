/**
 * What only the in-memory pool (the file backend) has: its state written by state/format.ts and
 * restored, and its indexes at 100,000 keys. The rules themselves run on both stores in
 * rules-both-stores.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keyIdOf } from '../../../shared/keys.js';
import type { Handout, HandoutAttempt } from '../../../server/pools/contract.js';
import { DEFAULT_POLICY, type PoolPolicy } from '../../../server/pools/policy.js';
import { Pool } from '../../../server/pools/pool.js';
import type { PoolState } from '../../../server/pools/records.js';
import { msText, poolJsonChunks, STATE_VERSION, windowStartsAt } from '../../../server/state/format.js';
import { deserializeState } from '../../../server/state/state-parser.js';
import { WINDOW_KINDS } from '../../../server/pools/windows.js';
import { FakeClock } from '../../helpers/clock.js';
import { lines, makeKeys } from '../../helpers/keys.js';

function pool(keys: string[], policy: Partial<PoolPolicy> = {}, clock = new FakeClock(), rng?: () => number) {
  const p = new Pool('test', { ...DEFAULT_POLICY, ...policy }, { rng });
  p.setKeys(lines(keys), clock.now());
  return p;
}

/** A state file holding one pool, written as a full save writes it. */
function saveText(p: Pool, now: number, name = 'test'): string {
  const { records, retired } = p.takeAll();
  const chunks = poolJsonChunks(p.header(), records, retired, windowStartsAt(p.clock, now), undefined, 2);
  return `{"version":${STATE_VERSION},"savedAt":${now},"seq":1,"pools":{"${name}":${[...chunks].join('')}}}`;
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

function served(h: HandoutAttempt): string {
  assert.equal(h.ok, true, `expected a key, got ${JSON.stringify(h)}`);
  return (h as Handout & { ok: true }).key;
}

function take(p: Pool, clock: FakeClock, n: number): string[] {
  return Array.from({ length: n }, () => served(p.handout(clock.now())));
}

describe('Pool persistence and scale', () => {
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
    assert.deepEqual(
      stats.keys.map((k) => k.served.day),
      [4, 2, 0],
    );
    assert.equal(stats.keys[2]!.status, 'blocked');
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

  it('a 100,000-key pool rotates in order and finds the one usable key among blocked ones', () => {
    const clock = new FakeClock();
    const keys = makeKeys(100_000);
    const p = pool(keys, {}, clock);
    assert.deepEqual(take(p, clock, 3), keys.slice(0, 3));
    for (let i = 0; i < keys.length; i++)
      if (i !== 77_777) p.report({ keyId: keyIdOf(keys[i]!), outcome: 'invalid' }, clock.now());
    assert.deepEqual(take(p, clock, 2), [keys[77_777], keys[77_777]]);
    assert.equal(p.stats(clock.now(), { keys: 'none' }).available, 1);
  });

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

describe('Pool incremental serialisation', () => {
  it('what the state format writes of a pool reads back as snapshot(), whatever happened in between; format 1 of the same snapshot reads the same', () => {
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
          p.report(
            { keyId: keyIdOf(k), outcome: outcomes[rand(5)]!, ...(rand(2) ? { retryAfterSec: rand(30) } : {}) },
            clock.now(),
          );
          break;
        case 4:
          clock.advance(rand(90_000));
          p.stats(clock.now()); // settles blocks and probes
          break;
        case 5:
          p.setKeys(lines(keys.filter(() => rand(4) > 0)), clock.now());
          break;
        case 6:
          p.admin((['disable', 'enable', 'reset'] as const)[rand(3)]!, keyIdOf(k), clock.now(), 'x');
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
    const samples = [
      0,
      1,
      59_999,
      999_999,
      1_000_000,
      1_000_001,
      1_000_000_000,
      1_763_763_725_123,
      1_763_763_000_001,
      1_763_763_100_000,
      2 ** 53 - 1,
      2 ** 53,
      -5,
      1.5,
      1e21,
    ];
    let x = 1_763_000_000_000;
    for (let i = 0; i < 2000; i++) samples.push((x += 1 + ((i * 7919) % 1_000_003)));
    for (const ms of samples) assert.equal(msText(ms), String(ms), `${ms}`);
  });
});
