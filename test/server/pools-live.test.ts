/**
 * pools.json edited while the server runs: a valid change applies within 2 s without a restart
 * (the pool's counts carried over), and is logged with what changed; a broken one keeps the
 * settings in force, with one ERROR naming the field.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REDIS_SKIP, TestRedis, redisBackendOn } from '../helpers/redis.js';
import { makeKeys } from '../helpers/keys.js';
import { getJson, makeLayout, offlinePools, startInProcess } from '../helpers/server.js';
import { until } from '../helpers/wait.js';

describe('pools.json, live', () => {
  it('perDay 5 → 7 applies within 2 s with the counts kept; a broken file keeps 7 and says which field', async (t) => {
    const s = await startInProcess(t, {
      keys: { plantid: makeKeys(1) },
      pools: { plantid: { limits: { perDay: 5 } } },
    });
    const take = async () => (await getJson(`${s.url}/api/plantid`)).status;
    const taken = [];
    for (let i = 0; i < 6; i++) taken.push(await take());
    assert.deepEqual(taken, [200, 200, 200, 200, 200, 503]);

    const file = join(s.layout.keysDir, 'pools.json');
    await writeFile(file, JSON.stringify(offlinePools({ plantid: { limits: { perDay: 7 }, strategy: 'fill-first' } })));
    const changedAt = performance.now();
    const stats = async () => (await getJson(`${s.url}/api/stats?pool=plantid`)).body.pools[0];
    await until('the new limit', async () => (await stats()).limits.perDay === 7, 2000);
    assert.ok(performance.now() - changedAt < 2000);
    assert.equal((await stats()).strategy, 'fill-first');
    assert.deepEqual([await take(), await take(), await take()], [200, 200, 503]); // 5 served before count
    const logged = (level: string) =>
      s.lines.map((l) => JSON.parse(l) as { level: string; message: string }).filter((l) => l.level === level);
    assert.ok(
      logged('info').some(
        (l) => l.message === 'pools.json: pool plantid: strategy "round-robin" → "fill-first"; limits.perDay 5 → 7',
      ),
    );

    await writeFile(file, JSON.stringify(offlinePools({ plantid: { limits: { perDay: -1 } } })));
    await until('the refusal', async () => logged('error').length > 0, 2000);
    await new Promise((r) => setTimeout(r, 500)); // more polls: still one line
    const errors = logged('error');
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.match(
      errors[0]!.message,
      /pools\.json: pool plantid: limits\.perDay: .*; the pools keep the settings in force$/u,
    );
    assert.equal((await stats()).limits.perDay, 7);
  });
});

describe('pools.json, live, on Redis', { skip: REDIS_SKIP }, () => {
  const redis = new TestRedis();
  before(() => redis.start());
  after(() => redis.destroy());

  it('every instance on one Redis applies a change, the counts Redis holds kept', async (t) => {
    const layout = await makeLayout(t, { plantid: makeKeys(1) }, { plantid: { limits: { perDay: 3 } } });
    const env = { STATE_BACKEND: 'redis' };
    const backend = redisBackendOn(redis, 'kwlive:');
    const [one, two] = [
      await startInProcess(t, { layout, env, backend }),
      await startInProcess(t, { layout, env, backend }),
    ];
    const take = async (url: string) => (await getJson(`${url}/api/plantid`)).status;
    assert.deepEqual(
      [await take(one.url), await take(two.url), await take(one.url), await take(two.url)],
      [200, 200, 200, 503],
    );
    await writeFile(
      join(layout.keysDir, 'pools.json'),
      JSON.stringify(offlinePools({ plantid: { limits: { perDay: 4 } } })),
    );
    for (const s of [one, two])
      await until(
        'the new limit on every instance',
        async () => (await getJson(`${s.url}/api/stats?pool=plantid`)).body.pools[0].limits.perDay === 4,
        2000,
      );
    assert.deepEqual([await take(two.url), await take(one.url)], [200, 503]); // the 3 served before still count
  });
});
