/**
 * Upstream sync in Redis mode: instances sharing state take turns (one syncs a pool's round,
 * not all of them), and what it learns is every instance's.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { keyIdOf } from '../../../shared/keys.js';
import type { StatsResponse } from '../../../shared/stats.js';
import { FakeClock } from '../../helpers/clock.js';
import { FakeKindwise } from '../../helpers/kindwise.js';
import { makeKeys } from '../../helpers/keys.js';
import { REDIS_SKIP, TestRedis, redisBackendOn } from '../../helpers/redis.js';
import { getJson, startInProcess } from '../../helpers/server.js';
import { until } from '../../helpers/wait.js';

describe('upstream sync with the Redis backend', { skip: REDIS_SKIP }, () => {
  const redis = new TestRedis();
  before(() => redis.start());
  after(() => redis.destroy());

  it('two instances: one checks each key per round, both show the verdicts and credits', async (t) => {
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:00Z'));
    const fake = new FakeKindwise(clock.now);
    await fake.start();
    t.after(() => fake.stop());
    const [a, b, c] = makeKeys(3);
    fake.addKey(a!, { limits: { day: 40 } });
    fake.addKey(b!, { active: false });
    fake.addKey(c!, { limits: { month: 70 } });
    const instance = () =>
      startInProcess(t, {
        clock,
        keys: { plantid: [a!, b!, c!] },
        pools: { plantid: { upstream: { origin: fake.url } } },
        // A long interval: only the start-up rounds run in this test.
        env: { STATE_BACKEND: 'redis', UPSTREAM_SYNC_INTERVAL_MS: '600000' },
        backend: redisBackendOn(redis, 'kwsync:', clock.now),
      });
    const first = await instance();
    const second = await instance();
    const stats = async (url: string) =>
      ((await getJson(`${url}/api/stats`)).body as StatsResponse).pools.find((p) => p.name === 'plantid')!;
    await until('the start-up round', async () => (await stats(second.url)).creditsRemaining === 110);
    for (const s of [first, second]) {
      const p = await stats(s.url);
      assert.deepEqual(
        p.keys.map((k) => [k.keyId, k.status, k.credits?.remaining.day ?? null]),
        [
          [keyIdOf(a!), 'available', 40],
          [keyIdOf(b!), 'invalid', null],
          [keyIdOf(c!), 'available', null],
        ],
      );
      assert.equal(p.upstreamSync?.ok, true);
    }
    // Stopped, each instance has finished its start-up round (stop waits for it): one of them
    // asked about each key, once.
    await Promise.all([first.stop(), second.stop()]);
    assert.deepEqual(fake.requests.map((r) => r.apiKey).sort(), [a!, b!, c!].sort());
  });
});
