/** GET /api/stats/history through the running server: real handouts and reports, kept across a restart (state file and Redis). */
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { keyIdOf } from '../../../shared/keys.js';
import type { ActivityKind, HistorySeries } from '../../../server/pools/activity.js';
import { FakeClock } from '../../helpers/clock.js';
import { makeKeys } from '../../helpers/keys.js';
import { REDIS_MISSING, redisServerBinary, TestRedis, redisBackendOn } from '../../helpers/redis.js';
import { getJson, makeLayout, postJson, startInProcess, type InProcess, type Layout } from '../../helpers/server.js';

const MINUTE = Date.parse('2026-11-21T12:00:00Z');

async function traffic(s: InProcess, keys: string[]) {
  for (let i = 0; i < 3; i++) assert.equal((await getJson(`${s.url}/api/plantid`)).status, 200);
  await postJson(`${s.url}/api/plantid/report`, { keyId: keyIdOf(keys[0]!), outcome: 'ok' });
  await postJson(`${s.url}/api/plantid/report`, { keyId: keyIdOf(keys[0]!), status: 429, retryAfter: 60 });
  await postJson(`${s.url}/api/plantid/report`, { keyId: keyIdOf(keys[1]!), status: 401 });
  assert.equal((await getJson(`${s.url}/api/plantid`)).status, 503); // both keys out: no key
}

const last = (series: HistorySeries, kind: ActivityKind) => series.counts[kind].at(-1);

describe('history for the dashboard', () => {
  it('counts handouts, outcomes and requests without a key per minute and hour, and keeps them over a restart', async (t: TestContext) => {
    const clock = new FakeClock(MINUTE + 30_000);
    const keys = makeKeys(2);
    const layout = await makeLayout(t, { plantid: keys });
    const first = await startInProcess(t, { clock, layout });
    await traffic(first, keys);
    const h = (await getJson(`${first.url}/api/stats/history?pool=plantid&range=1h`)).body;
    assert.deepEqual(
      [h.pool, h.range, h.bucketMs, h.starts.length, h.starts.at(-1)],
      ['plantid', '1h', 60_000, 60, MINUTE],
    );
    assert.deepEqual(
      (['served', 'ok', 'rate_limited', 'invalid', 'no_key', 'exhausted', 'error'] as const).map((k) => last(h, k)),
      [3, 1, 1, 1, 1, 0, 0],
    );
    await first.stop();

    clock.advance(2 * 3_600_000); // two hours later, after a restart
    const second = await startInProcess(t, { clock, layout });
    const week = (await getJson(`${second.url}/api/stats/history?pool=plantid&range=7d`)).body;
    assert.equal(week.counts.served.at(-3), 3);
    assert.equal(
      (await getJson(`${second.url}/api/stats/history?pool=plantid&range=24h`)).body.counts.served.at(-121),
      3,
    );
    assert.equal(last((await getJson(`${second.url}/api/stats/history?pool=plantid&range=1h`)).body, 'served'), 0);

    assert.deepEqual(
      (await getJson(`${second.url}/api/stats/history?pool=plantid&range=1y`)).body.error,
      'invalid_query',
    );
    assert.deepEqual((await getJson(`${second.url}/api/stats/history`)).body.error, 'invalid_query');
    assert.equal((await getJson(`${second.url}/api/stats/history?pool=nosuch`)).status, 404);
  });

  const available = redisServerBinary() !== null;
  if (!available && process.env.CI) throw new Error(REDIS_MISSING);
  describe('with the Redis backend', { skip: available ? false : REDIS_MISSING }, () => {
    const redis = new TestRedis();
    before(() => redis.start());
    after(() => redis.destroy());

    it('two instances add up; a restart of both keeps the counts', async (t) => {
      const clock = new FakeClock(MINUTE + 30_000);
      const keys = makeKeys(2);
      const instance = (layout: Layout) =>
        startInProcess(t, {
          clock,
          layout,
          env: { STATE_BACKEND: 'redis' },
          backend: redisBackendOn(redis, 'kwhist:', clock.now),
        });
      const layoutA = await makeLayout(t, { plantid: keys });
      const layoutB = await makeLayout(t, { plantid: keys });
      const a = await instance(layoutA);
      const b = await instance(layoutB);
      for (let i = 0; i < 2; i++) assert.equal((await getJson(`${a.url}/api/plantid`)).status, 200);
      for (let i = 0; i < 3; i++) assert.equal((await getJson(`${b.url}/api/plantid`)).status, 200);
      // What b has not flushed yet is in its own answer; a's flush (at stop) joins Redis.
      await a.stop();
      assert.equal(last((await getJson(`${b.url}/api/stats/history?pool=plantid&range=1h`)).body, 'served'), 5);
      await b.stop();
      const c = await instance(layoutA);
      assert.equal(last((await getJson(`${c.url}/api/stats/history?pool=plantid&range=1h`)).body, 'served'), 5);
    });
  });
});
