/**
 * An app's budget held exactly across two instances on one Redis: 50 concurrent creates split
 * over both spend exactly the budget's 5 credits at the upstream, the rest are 429
 * app_budget_exhausted with a Retry-After at the pool's midnight, free calls still pass, and
 * the budget is new after that midnight (the clock moved, not slept).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FakeClock } from '../../helpers/clock.js';
import { makeKeys } from '../../helpers/keys.js';
import { fakeUpstream, IDENTIFY, IMAGE } from '../../helpers/proxy.js';
import { REDIS_SKIP, TestRedis, redisBackendOn } from '../../helpers/redis.js';
import { call, makeLayout, startInProcess } from '../../helpers/server.js';

const ADMIN = 'admin-token-0123456789abcdef';

describe('app budgets on Redis', { skip: REDIS_SKIP }, () => {
  const redis = new TestRedis();
  before(() => redis.start());
  after(() => redis.destroy());

  it('5 credits a day over two instances: exactly 5 of 50 concurrent creates, then 429 until the pool midnight; free calls pass', async (t) => {
    // 21:00 in New York (02:00 UTC next day): the pool's day ends in 3 hours.
    const clock = new FakeClock(Date.parse('2026-11-22T02:00:00Z'));
    const fake = await fakeUpstream(t, clock);
    const keys = makeKeys(3);
    for (const k of keys) fake.addKey(k);
    const layout = await makeLayout(
      t,
      { plantid: keys },
      { plantid: { upstream: { origin: fake.url }, resetTimezone: 'America/New_York' } },
    );
    const env = { ADMIN_TOKEN: ADMIN, UPSTREAM_SYNC_INTERVAL_MS: '0', STATE_BACKEND: 'redis' };
    const backend = redisBackendOn(redis, 'kwbudget:', clock.now);
    const one = await startInProcess(t, { layout, env, backend, clock });
    const two = await startInProcess(t, { layout, env, backend, clock });
    const made = await call(`${one.url}/admin/apps`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}` },
      json: { name: 'mobile', mode: 'proxy', budget: { plantid: { day: 5 } } },
    });
    assert.equal(made.status, 201);
    const headers = { 'api-key': made.body.token as string, 'x-test-app': 'mobile' };
    // The other instance reads the apps file within a second.
    const create = (url: string) => call(`${url}/proxy/plantid${IDENTIFY}`, { method: 'POST', headers, json: IMAGE });
    await new Promise((r) => setTimeout(r, 1000));

    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => create(i % 2 ? one.url : two.url)));
    const statuses = answers.map((a) => a.status);
    assert.equal(statuses.filter((s) => s === 201).length, 5, JSON.stringify(statuses));
    assert.equal(fake.chargedBy.get('mobile'), 5);
    const refused = answers.filter((a) => a.status === 429);
    assert.equal(refused.length, 45);
    for (const r of refused) {
      assert.equal(r.body.error, 'app_budget_exhausted');
      assert.equal(r.headers.get('retry-after'), String(3 * 3600));
    }
    // Nothing of the refused reached the upstream: 5 creates in all.
    assert.equal(fake.requests.filter((r) => r.method === 'POST').length, 5);
    // A free call (a retrieval of an identification it made) still passes.
    const token = answers.find((a) => a.status === 201)!.body.access_token as string;
    assert.equal((await call(`${two.url}/proxy/plantid${IDENTIFY}/${token}`, { headers })).status, 200);
    // Usage per app, as either instance shows it, equals what the upstream charged.
    const usage = await call(`${two.url}/admin/apps/mobile`, { headers: { authorization: `Bearer ${ADMIN}` } });
    assert.deepEqual(usage.body.usage.plantid.credits, { day: 5, week: 5, month: 5, total: 5 });

    // Past the pool's midnight (05:00 UTC) the day's budget is new.
    clock.set('2026-11-22T05:00:00Z');
    assert.equal((await create(one.url)).status, 201);
    assert.equal((await create(two.url)).status, 201);
    assert.equal(fake.chargedBy.get('mobile'), 7);
  });
});
