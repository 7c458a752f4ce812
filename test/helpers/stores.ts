import { Redis } from 'ioredis';
import type { PoolBackend } from '../../server/pools/contract.js';
import { DEFAULT_POLICY, type PoolPolicy } from '../../server/pools/policy.js';
import { Pool } from '../../server/pools/pool.js';
import { RedisPool } from '../../server/redis/pool.js';
import { FakeClock } from './clock.js';
import { lines } from './keys.js';
import { REDIS_MISSING, redisServerBinary, TestRedis } from './redis.js';

/** Makes a pool of `keys` (key-file lines) on one store. */
export type MakePool = (
  keys: string[],
  policy?: Partial<PoolPolicy>,
  clock?: FakeClock,
  rng?: () => number,
) => Promise<PoolBackend>;

/** A state store the rule suites run on: set up once per file, each pool with a fresh prefix. */
export interface RuleStore {
  label: string;
  /** Why the store cannot run here (redis-server missing outside CI), or false. */
  skip: string | false;
  setup(): Promise<MakePool>;
  teardown(): Promise<void>;
}

export const memoryStore: RuleStore = {
  label: 'memory (file backend)',
  skip: false,
  setup:
    async () =>
    async (keys, policy = {}, clock = new FakeClock(), rng) => {
      const p = new Pool('test', { ...DEFAULT_POLICY, ...policy }, { rng });
      p.setKeys(lines(keys), clock.now());
      return p;
    },
  teardown: async () => {},
};

/** The Redis store: a real redis-server on a loopback port; in CI a missing one is a failure, not a skip. */
export function redisStore(): RuleStore {
  const redis = new TestRedis();
  let client: Redis | null = null;
  let prefixSeq = 0;
  const missing = !redisServerBinary();
  if (missing && process.env.CI) throw new Error(REDIS_MISSING);
  return {
    label: 'Redis',
    skip: missing ? REDIS_MISSING : false,
    setup: async () => {
      await redis.start();
      const c = new Redis(redis.url);
      client = c;
      return async (keys, policy = {}, clock = new FakeClock(), rng) => {
        const p = new RedisPool('test', { ...DEFAULT_POLICY, ...policy }, c, `kwtest${++prefixSeq}:`, { rng });
        await p.setKeys(lines(keys), clock.now());
        return p;
      };
    },
    teardown: async () => {
      client?.disconnect();
      await redis.destroy();
    },
  };
}

/** Runs `fn` `n` times in turn, collecting what each returns. */
export async function times<T>(n: number, fn: () => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(await fn());
  return out;
}
