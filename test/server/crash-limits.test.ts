/**
 * No key is ever handed out past its limits, even across kill -9: twenty crash cycles under load
 * against the real server process, counting every use the clients received. With the file
 * backend, the server reserves uses durably before serving them; with Redis (append-only file),
 * Redis holds the counts, and Redis itself is killed too now and then.
 * CRASH_CYCLES sets the number of cycles: 6 in `npm test`, 20 for the full check
 * (`CRASH_CYCLES=20 node --import tsx --test test/server/crash-limits.test.ts`).
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type { StatsResponse } from '../../shared/stats.js';
import { makeKeys } from '../helpers/keys.js';
import { REDIS_MISSING, redisServerBinary, TestRedis } from '../helpers/redis.js';
import { getJson, makeLayout, spawnServer, type Layout } from '../helpers/server.js';
import { until } from '../helpers/wait.js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeToken } from '../../server/apps/model.js';

const CYCLES = Number(process.env.CRASH_CYCLES ?? 6);
/** Small enough that the keys run out within the cycles (about 55 handouts a cycle over 3 keys). */
const LIMIT = CYCLES * 15;
const KEYS = 3;

/**
 * Crash cycles: start a server, load it with `concurrency` callers until it has served a few
 * dozen (or has nothing left), kill -9 it. Returns the uses each keyId reached callers with.
 */
async function crashCycles(
  t: TestContext,
  layout: Layout,
  env: Record<string, string>,
  between?: (cycle: number) => Promise<void>,
  /** Headers of every handout (an app's token), and the error that means nothing is left. */
  ask: { headers?: Record<string, string>; emptyWhen?: string } = {},
): Promise<{ perKey: Map<string, number>; lastStats: StatsResponse }> {
  const emptyWhen = ask.emptyWhen ?? 'no_key_available';
  const perKey = new Map<string, number>();
  let lastStats: StatsResponse | null = null;
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const s = await spawnServer(t, layout, env);
    let served = 0;
    let empty = false;
    const target = 30 + ((cycle * 17) % 50);
    const worker = async () => {
      while (!empty && served < target) {
        const r = await getJson(`${s.url}/api/plantid`, { headers: ask.headers }).catch(() => null);
        if (r?.status === 200) {
          served++;
          perKey.set(r.body.keyId, (perKey.get(r.body.keyId) ?? 0) + 1);
        } else if (r?.body?.error === emptyWhen) empty = true;
        else if (r === null) return;
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    await until('some handouts, or no key left', async () => served >= target || empty);
    if (cycle === CYCLES - 1)
      lastStats = (await getJson(`${s.url}/api/stats`, { headers: ask.headers })).body as StatsResponse;
    await s.kill('SIGKILL'); // requests in flight die with it
    await Promise.all(workers);
    await between?.(cycle);
  }
  return { perKey, lastStats: lastStats! };
}

describe('limits across kill -9', { concurrency: true }, () => {
  it('a clean stop keeps no reservation: a restart resumes the exact counts, nothing counted as wasted', async (t) => {
    const layout = await makeLayout(t, { plantid: makeKeys(KEYS) }, { plantid: { limits: { total: LIMIT } } });
    const s = await spawnServer(t, layout);
    for (let i = 0; i < 50; i++) assert.equal((await getJson(`${s.url}/api/plantid`)).status, 200);
    assert.equal(await s.kill('SIGTERM'), 0);
    const again = await spawnServer(t, layout);
    const st = (await getJson(`${again.url}/api/stats`)).body as StatsResponse;
    assert.equal(
      st.pools[0]!.keys.reduce((n, k) => n + k.served.total, 0),
      50,
    );
    assert.doesNotMatch(again.output(), /not stopped cleanly/u);
    for (let i = 0; i < 5; i++) assert.equal((await getJson(`${again.url}/api/plantid`)).status, 200); // reserves ahead
    assert.equal(await again.kill('SIGKILL'), 'SIGKILL');
    const third = await spawnServer(t, layout); // after a kill -9, the reserved uses count
    assert.match(
      third.output(),
      /pool plantid was not stopped cleanly; counted the \d+ reserved uses of \d+ keys as used/u,
    );
  });

  it(`file backend: ${CYCLES} crash cycles under load, no key past limits.total`, async (t) => {
    const layout = await makeLayout(t, { plantid: makeKeys(KEYS) }, { plantid: { limits: { total: LIMIT } } });
    // Timed saves every 2 s, as by default: without reservations a crash forgets the handouts since the last one.
    const { perKey, lastStats } = await crashCycles(t, layout, { STATE_SAVE_INTERVAL_MS: '2000' });
    t.diagnostic(`uses that reached callers, per key: ${[...perKey.values()].join(', ')} (limit ${LIMIT})`);
    for (const [keyId, n] of perKey)
      assert.ok(n <= LIMIT, `key ${keyId} reached callers ${n} times, its limit is ${LIMIT}`);
    const served = [...perKey.values()].reduce((a, b) => a + b, 0);
    assert.ok(
      served >= Math.min(KEYS * LIMIT * 0.5, CYCLES * 10),
      `served ${served}: crashes may waste a little, not most of the quota`,
    );
    for (const k of lastStats.pools[0]!.keys)
      assert.ok(k.served.total <= LIMIT && k.served.total >= (perKey.get(k.keyId) ?? 0), JSON.stringify(k.served));
  });

  it(`file backend: ${CYCLES} crash cycles under load, no app past its day budget`, async (t) => {
    // A pool without limits: only the app's budget is reserved ahead of its handouts.
    const layout = await makeLayout(t, { plantid: makeKeys(KEYS) }, { plantid: {} });
    const { token, stored } = makeToken();
    const app = {
      name: 'mobile',
      pools: '*',
      mode: 'handout',
      stats: true,
      budget: { plantid: { day: LIMIT } },
      ratePerMinute: null,
      expiresAt: null,
      disabled: false,
      admin: false,
      createdAt: Date.now(),
      tokens: [stored],
    };
    await writeFile(join(layout.dir, 'apps.json'), JSON.stringify({ version: 1, apps: [app] }));
    const { perKey } = await crashCycles(t, layout, { STATE_SAVE_INTERVAL_MS: '2000' }, undefined, {
      headers: { authorization: `Bearer ${token}` },
      emptyWhen: 'app_budget_exhausted',
    });
    const served = [...perKey.values()].reduce((a, b) => a + b, 0);
    t.diagnostic(`handouts that reached the app: ${served} (its day budget ${LIMIT})`);
    assert.ok(served <= LIMIT, `the app received ${served} handouts, its budget is ${LIMIT}`);
    assert.ok(served >= Math.min(LIMIT * 0.5, CYCLES * 10), `served ${served}: crashes waste a little, not most`);
  });

  it(
    `Redis backend with AOF: ${CYCLES} crash cycles of the server (and of Redis every fifth), no key past limits.total`,
    { skip: redisServerBinary() ? false : REDIS_MISSING },
    async (t) => {
      const redis = new TestRedis();
      await redis.start();
      t.after(() => redis.destroy());
      const layout = await makeLayout(t, { plantid: makeKeys(KEYS) }, { plantid: { limits: { total: LIMIT } } });
      const env = { STATE_BACKEND: 'redis', REDIS_URL: redis.url, REDIS_PREFIX: 'kw-crash:' };
      const { perKey } = await crashCycles(t, layout, env, async (cycle) => {
        if (cycle % 5 !== 4) return;
        await redis.stop('SIGKILL');
        await redis.start();
      });
      t.diagnostic(`uses that reached callers, per key: ${[...perKey.values()].join(', ')} (limit ${LIMIT})`);
      for (const [keyId, n] of perKey)
        assert.ok(n <= LIMIT, `key ${keyId} reached callers ${n} times, its limit is ${LIMIT}`);
      assert.ok([...perKey.values()].reduce((a, b) => a + b, 0) >= Math.min(KEYS * LIMIT * 0.5, CYCLES * 10));
    },
  );
});
