/**
 * The two rule engines side by side: the same seeded random operations (handouts of one use or
 * several, leases of a block with part given back, for apps with budgets or none, reports,
 * key-file reloads, admin actions, clock moves) go to an in-memory Pool and a RedisPool, and every answer and the stats after every step must be equal. `npm test` runs a short fixed
 * set of seeds; `DIFF_RUNS=500 node --import tsx --test test/server/pools/differential.test.ts`
 * runs more (DIFF_SEED picks the first seed, DIFF_STEPS the steps a run).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { keyIdOf } from '../../../shared/keys.js';
import type { PoolBackend, UpstreamCheck } from '../../../server/pools/contract.js';
import type { PoolPolicy } from '../../../server/pools/policy.js';
import type { Spender } from '../../../server/pools/budgets.js';
import { OUTCOMES, type ReportInput } from '../../../server/pools/rules.js';
import { FakeClock } from '../../helpers/clock.js';
import { lines, makeKeys } from '../../helpers/keys.js';
import { memoryStore, redisStore, type MakePool } from '../../helpers/stores.js';

const RUNS = Number(process.env.DIFF_RUNS ?? 8);
const FIRST_SEED = Number(process.env.DIFF_SEED ?? 1);
const STEPS = Number(process.env.DIFF_STEPS ?? 120);

/** A small deterministic generator (mulberry32), so a failing seed replays exactly. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]!,
  };
}

function randomPolicy(r: ReturnType<typeof prng>): Partial<PoolPolicy> {
  const limits: PoolPolicy['limits'] = {};
  if (r.int(2)) limits.perMinute = 1 + r.int(6);
  if (r.int(3) === 0) limits.perHour = 3 + r.int(20);
  if (r.int(3) === 0) limits.perDay = 5 + r.int(40);
  if (r.int(4) === 0) limits.perWeek = 8 + r.int(60);
  if (r.int(4) === 0) limits.perMonth = 10 + r.int(80);
  if (r.int(3) === 0) limits.total = 5 + r.int(60);
  return {
    strategy: r.pick(['round-robin', 'fill-first', 'least-recently-used', 'random'] as const),
    rotateEvery: 1 + r.int(3),
    limits,
    poolPerMinute: r.int(3) === 0 ? 2 + r.int(10) : null,
    maxFailures: 1 + r.int(3),
    failureWindowSec: 30 + r.int(300),
    maxBackoffSec: 60 + r.int(600),
    probeTimeoutSec: 5 + r.int(60),
    resetTimezone: r.pick(['UTC', 'America/Los_Angeles', 'Asia/Kolkata']),
    upstreamLimits: r.int(2) === 0,
  };
}

async function run(seed: number, makeMemory: MakePool, makeRedis: MakePool): Promise<void> {
  const r = prng(seed);
  const clock = new FakeClock(Date.parse('2026-11-21T23:58:00Z') + r.int(86_400_000));
  const keys = makeKeys(2 + r.int(5));
  const policy = randomPolicy(r);
  // Apps with budgets (day, week, month, some unset) and one without: charged on handouts and recounts.
  const budget = () => ({
    ...(r.int(2) ? { day: 1 + r.int(8) } : {}),
    ...(r.int(3) === 0 ? { week: 3 + r.int(20) } : {}),
    ...(r.int(3) === 0 ? { month: 5 + r.int(40) } : {}),
  });
  const spenders: Array<Spender | undefined> = [
    undefined,
    { app: 'alpha', budget: budget() },
    { app: 'beta', budget: budget() },
    { app: 'free', budget: null },
  ];
  let roll = 0; // both engines draw the same number for a random pick
  const rng = () => roll;
  let members = keys.slice(0, Math.max(1, keys.length - r.int(2)));
  const pools: PoolBackend[] = [
    await makeMemory(members, policy, clock, rng),
    await makeRedis(members, policy, clock, rng),
  ];
  const both = async <T>(what: string, step: number, op: (p: PoolBackend) => T | Promise<T>): Promise<void> => {
    const [a, b] = [await op(pools[0]!), await op(pools[1]!)];
    if (process.env.DIFF_TRACE) console.log(step, what, JSON.stringify(a));
    assert.deepEqual(b, a, `seed ${seed} step ${step}: ${what} differs (memory first, Redis second)`);
  };
  for (let step = 0; step < STEPS; step++) {
    const key = r.pick(keys);
    switch (r.int(12)) {
      case 0:
      case 1:
      case 2:
      case 3: {
        roll = r.next();
        const want = r.int(4) === 0 ? 1 + r.int(5) : 1;
        const spender = r.pick(spenders);
        // A lease (redis/leases.ts) now and then: a block of uses, part of it given back unused.
        const block = r.int(3) === 0 ? 2 + r.int(40) : 0;
        const at = clock.now();
        const got = await pools[0]!.handout(at, want, spender, block);
        await both(`handout(${want}, block ${block}) for ${spender?.app ?? 'nobody'}`, step, async (p) =>
          p === pools[0] ? got : p.handout(at, want, spender, block),
        );
        if (got.ok && block > 0 && r.int(2)) {
          clock.advance(r.pick([0, 300, 70_000]));
          const unused = r.int(got.granted + 1);
          await both(`lease of ${got.granted} gives back ${unused}`, step, (p) =>
            p.recount(got.keyId, -unused, at, clock.now(), spender?.app),
          );
        }
        break;
      }
      case 4:
      case 5: {
        const input: ReportInput = r.int(2)
          ? { keyId: keyIdOf(key), outcome: r.pick(OUTCOMES) }
          : { keyId: keyIdOf(key), status: r.pick([200, 400, 401, 402, 403, 408, 429, 500, 503]) };
        if (r.int(3) === 0) input.retryAfterSec = r.int(120);
        await both(`report ${JSON.stringify(input)}`, step, (p) => p.report(input, clock.now()));
        break;
      }
      case 6: {
        // A reload: unchanged, reordered, with keys added or removed, or a line edited.
        const kind = r.int(4);
        if (kind === 1) members = [...members].sort(() => r.next() - 0.5);
        if (kind === 2) members = keys.filter(() => r.int(3) > 0);
        const file = members.map((k) => (kind === 3 && k === key ? `${k}  # edited ${step}` : k));
        await both('reload', step, (p) => p.setKeys(lines(file), clock.now()));
        break;
      }
      case 7: {
        const action = r.pick(['disable', 'enable', 'reset'] as const);
        await both(`admin ${action}`, step, (p) => p.admin(action, keyIdOf(key), clock.now(), 'by the test'));
        break;
      }
      case 8: {
        // An upstream check: unreachable, fine, invalid or exhausted in one of its windows.
        const kind = r.int(4);
        const credits = r.int(2)
          ? null
          : {
              remaining: { day: r.int(50), week: null, month: r.int(500), total: null },
              used: {
                day: r.int(8),
                week: r.int(3) ? null : r.int(20),
                month: 2 + r.int(20),
                total: r.int(2) ? null : 20 + r.int(40),
              },
              limits: {
                day: r.pick([null, 3, 8, 50]),
                week: r.pick([null, 30]),
                month: r.pick([null, 10, 500]),
                total: r.pick([null, 60]),
              },
              syncedAt: clock.now(),
            };
        const check: UpstreamCheck =
          kind === 0
            ? { reached: false, error: 'timeout' }
            : {
                reached: true,
                keyId: keyIdOf(key),
                credits,
                ...(r.int(2) ? { servedBefore: r.int(10) } : {}),
                finding:
                  kind === 1
                    ? null
                    : kind === 2
                      ? { status: 'invalid', reason: 'not active' }
                      : {
                          status: 'exhausted',
                          reason: 'limit',
                          window: r.pick(['day', 'week', 'month', 'total'] as const),
                        },
              };
        await both(`upstream ${JSON.stringify(check)}`, step, (p) => p.recordUpstream(check, clock.now()));
        break;
      }
      case 10: {
        // A proxied create the upstream did not charge (its uses go back), or a report that a call cost more.
        const delta = r.pick([-2, -1, 1, 3]);
        const at = clock.now() - r.pick([0, 1_000, 61_000, 3_600_000, 86_400_000]);
        const app = r.pick(spenders)?.app;
        await both(`recount ${delta} at -${clock.now() - at} ms for ${app ?? 'nobody'}`, step, (p) =>
          p.recount(keyIdOf(key), delta, at, clock.now(), app),
        );
        await both('keyStatus', step, (p) => p.keyStatus([...keys.map(keyIdOf), 'ffffffffffff'], clock.now()));
        break;
      }
      case 11: {
        // Pins: an identification pinned to a key, read back, counted.
        const ref = `t${r.int(6)}`;
        if (r.int(2)) await both(`pin ${ref}`, step, (p) => p.pin([ref], keyIdOf(key), clock.now()));
        await both(`pinned ${ref}`, step, (p) => p.pinned(ref, clock.now()));
        await both('pinCount', step, (p) => p.pinCount());
        break;
      }
      default:
        clock.advance(r.pick([0, 1, 500, 5_000, 30_000, 61_000, 600_000, 3_600_000, 86_400_000]));
    }
    await both('stats', step, (p) => p.stats(clock.now()));
    await both('appUsage', step, (p) => p.appUsage(clock.now()));
  }
}

const redis = redisStore();
describe('the in-memory and Redis engines agree on random operations', { skip: redis.skip }, () => {
  let makeMemory: MakePool;
  let makeRedis: MakePool;
  before(async () => {
    makeMemory = await memoryStore.setup();
    makeRedis = await redis.setup();
  });
  after(() => redis.teardown());

  it(`${RUNS} seeded runs of ${STEPS} steps from seed ${FIRST_SEED}`, async () => {
    for (let seed = FIRST_SEED; seed < FIRST_SEED + RUNS; seed++) await run(seed, makeMemory, makeRedis);
  });
});
