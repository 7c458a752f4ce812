/**
 * Redis CPU per handout: a RedisPool of 3 keys (round-robin, with limits) on a fresh redis-server,
 * `BENCH_REDIS_HANDOUTS` handouts from 50 at a time, then Redis's own `INFO commandstats`: the
 * microseconds each script run took inside Redis (usec_per_call of evalsha/eval), which is what
 * caps one Redis however many instances share it.
 */
import { Redis } from 'ioredis';
import { DEFAULT_POLICY } from '../server/pools/policy.js';
import { RedisPool, withPoolScript } from '../server/redis/pool.js';
import { lines, makeKeys } from '../test/helpers/keys.js';
import { TestRedis } from '../test/helpers/redis.js';

const HANDOUTS = Number(process.env.BENCH_REDIS_HANDOUTS ?? 20_000);

/** Microseconds per script run inside Redis, from INFO commandstats. */
async function usecPerCall(client: Redis): Promise<{ calls: number; usecPerCall: number }> {
  const info = await client.info('commandstats');
  let calls = 0;
  let usec = 0;
  for (const m of info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+),usec=(\d+)/gmu)) {
    calls += Number(m[1]);
    usec += Number(m[2]);
  }
  return { calls, usecPerCall: calls ? usec / calls : 0 };
}

export async function redisCpuPerHandout(): Promise<{ calls: number; usecPerCall: number }> {
  const redis = new TestRedis();
  await redis.start();
  const client = new Redis(redis.url);
  try {
    const policy = { ...DEFAULT_POLICY, limits: { perDay: 1_000_000_000, perMinute: 1_000_000_000 } };
    const pool = new RedisPool('plantid', policy, withPoolScript(client), 'cpu:');
    await pool.setKeys(lines(makeKeys(3)), Date.now());
    for (let i = 0; i < 500; i++) await pool.handout(Date.now()); // warm-up: the script cached, tables made
    await client.config('RESETSTAT');
    let left = HANDOUTS;
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (left-- > 0) await pool.handout(Date.now());
      }),
    );
    return await usecPerCall(client);
  } finally {
    client.disconnect();
    await redis.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await redisCpuPerHandout();
  console.log(`Redis CPU per handout: ${r.usecPerCall.toFixed(1)} µs over ${r.calls} script runs`);
}
