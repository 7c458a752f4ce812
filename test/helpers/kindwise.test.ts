/** The fake Kindwise upstream behaves like Kindwise where the upstream tests rely on it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from './clock.js';
import { FakeKindwise } from './kindwise.js';
import type { Json } from './server.js';

async function call(
  fake: FakeKindwise,
  method: string,
  path: string,
  key: string | null,
  body?: unknown,
  timeoutMs = 5000,
) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key !== null) headers['Api-Key'] = key;
  const res = await fetch(`${fake.url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: res.status, body: (await res.json()) as Json };
}

const IMAGE = { images: ['data:image/jpeg;base64,AAAA'] };

describe('the fake Kindwise upstream', () => {
  it('usage_info is free; identifications spend credits (health one more); a day limit is a 429 naming it until UTC midnight', async (t) => {
    const clock = new FakeClock(Date.parse('2026-11-25T22:00:00Z')); // a Wednesday
    const fake = new FakeKindwise(clock.now);
    await fake.start();
    t.after(() => fake.stop());
    fake.addKey('k-day', { limits: { day: 3, week: 10, month: null, total: 100 } });

    for (let i = 0; i < 2; i++) {
      const u = await call(fake, 'GET', '/api/v3/usage_info', 'k-day');
      assert.equal(u.status, 200);
      assert.deepEqual(u.body, {
        active: true,
        credit_limits: { day: 3, week: 10, month: null, total: 100 },
        used: { day: 0, week: 0, month: 0, total: 0 },
        remaining: { day: 3, week: 10, month: null, total: 100 },
        can_use_credits: { value: true, reason: null },
      });
    }
    assert.equal((await call(fake, 'POST', '/api/v3/identification', 'k-day', IMAGE)).status, 201);
    assert.equal(
      (await call(fake, 'POST', '/api/v3/identification?details=common_names', 'k-day', { ...IMAGE, health: 'all' }))
        .status,
      201,
    );
    assert.deepEqual(fake.remaining('k-day'), { day: 0, week: 7, month: null, total: 97 });
    const out = await call(fake, 'POST', '/api/v3/identification', 'k-day', IMAGE);
    assert.deepEqual([out.status, out.body], [429, 'Your api key reached its day credit limit (3).']);
    assert.deepEqual((await call(fake, 'GET', '/api/v3/usage_info', 'k-day')).body.can_use_credits, {
      value: false,
      reason: 'Your api key reached its day credit limit (3).',
    });
    assert.equal(
      (await call(fake, 'POST', '/api/v3/identification', 'k-day', { images: [] })).body,
      'Invalid image data.',
    );

    clock.set('2026-11-26T00:00:00Z'); // UTC midnight: a new day, the same week
    assert.equal((await call(fake, 'POST', '/api/v3/identification', 'k-day', IMAGE)).status, 201);
    assert.deepEqual(fake.remaining('k-day'), { day: 2, week: 6, month: null, total: 96 });
    clock.set('2026-11-30T00:00:00Z'); // Monday: a new week
    assert.equal(fake.remaining('k-day').week, 10);
    assert.deepEqual(
      fake.received('/api/v3/usage_info').map((r) => r.apiKey),
      ['k-day', 'k-day', 'k-day'],
    );
  });

  it('unknown, inactive and spent keys answer as Kindwise does; crop.health answers under /api/v1', async (t) => {
    const fake = new FakeKindwise();
    await fake.start();
    t.after(() => fake.stop());
    fake.addKey('k-off', { active: false });
    fake.addKey('k-spent', { limits: { total: 1 }, used: { total: 1 } });
    assert.deepEqual(await call(fake, 'GET', '/api/v3/usage_info', 'k-nope'), {
      status: 401,
      body: 'The specified api key not found.',
    });
    assert.deepEqual(await call(fake, 'GET', '/api/v1/usage_info', 'k-off'), {
      status: 401,
      body: 'The specified api key is not active.',
    });
    assert.deepEqual(await call(fake, 'GET', '/api/v3/usage_info', null), {
      status: 401,
      body: 'The specified api key not found.',
    });
    assert.deepEqual(await call(fake, 'POST', '/api/v1/identification', 'k-spent', IMAGE), {
      status: 429,
      body: 'Your api key does not have sufficient number of available credits.',
    });
    fake.setActive('k-off', true);
    assert.equal((await call(fake, 'POST', '/api/v1/health_assessment', 'k-off', IMAGE)).status, 201);
  });

  it('fails on cue: a 503, a reset connection, a request never answered; then recovers', async (t) => {
    const fake = new FakeKindwise();
    await fake.start();
    t.after(() => fake.stop());
    fake.addKey('k');
    fake.fail('503', 1);
    assert.equal((await call(fake, 'GET', '/api/v3/usage_info', 'k')).status, 503);
    assert.equal((await call(fake, 'GET', '/api/v3/usage_info', 'k')).status, 200);
    fake.fail('reset', 1);
    await assert.rejects(call(fake, 'GET', '/api/v3/usage_info', 'k'), (err: Error) =>
      /fetch failed/u.test(err.message),
    );
    fake.fail('hang', 1);
    await assert.rejects(
      call(fake, 'GET', '/api/v3/usage_info', 'k', undefined, 300),
      (err: Error) => err.name === 'TimeoutError',
    );
    assert.equal((await call(fake, 'GET', '/api/v3/usage_info', 'k')).status, 200);
    assert.equal(fake.received('/api/v3/usage_info').length, 5);
  });
});
