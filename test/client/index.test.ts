import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { describe, it, type TestContext } from 'node:test';
import { createKeywardenClient, KeywardenError, parseRetryAfter } from '../../client/index.js';
import { keyIdOf } from '../../shared/keys.js';
import { FakeClock } from '../helpers/clock.js';
import { makeKeys } from '../helpers/keys.js';
import { getJson, startInProcess } from '../helpers/server.js';

const TOKEN = 'client-token-0123456789';

/** A stand-in upstream API on loopback that answers with the status (and headers) we set. */
async function upstream(t: TestContext) {
  const state = { status: 200, headers: {} as Record<string, string>, seenKeys: [] as string[] };
  const server = createServer((req, res) => {
    state.seenKeys.push(String(req.headers['api-key']));
    res.writeHead(state.status, { 'content-type': 'application/json', ...state.headers });
    res.end('{}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const addr = server.address();
  return { state, url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/identify` };
}

async function keyRow(url: string, keyId: string) {
  const stats = (await getJson(`${url}/api/stats`, { headers: { authorization: `Bearer ${TOKEN}` } })).body;
  return stats.pools[0].keys.find((k: { keyId: string }) => k.keyId === keyId);
}

describe('app client', () => {
  it('getKey and report against the real server; errors carry code and retryAfter', async (t) => {
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:30Z'));
    const [a] = makeKeys(1);
    const s = await startInProcess(t, {
      keys: { plantid: [a!] },
      pools: { plantid: { limits: { perMinute: 1 } } },
      env: { API_TOKENS: TOKEN },
      clock,
    });
    const kw = createKeywardenClient({ baseUrl: s.url, token: TOKEN });
    const h = await kw.getKey('plantid');
    assert.deepEqual(h, { pool: 'plantid', key: a, keyId: keyIdOf(a!), remaining: 0 });
    await assert.rejects(
      kw.getKey('plantid'),
      (e: unknown) =>
        e instanceof KeywardenError && e.status === 503 && e.code === 'no_key_available' && e.retryAfterSec === 30,
    );
    await assert.rejects(kw.getKey('nosuch'), (e: unknown) => e instanceof KeywardenError && e.code === 'unknown_pool');
    await kw.report(h.keyId, 'invalid');
    assert.equal((await keyRow(s.url, h.keyId)).status, 'disabled');
    const noToken = createKeywardenClient({ baseUrl: s.url });
    await assert.rejects(noToken.getKey('plantid'), (e: unknown) => e instanceof KeywardenError && e.status === 401);
  });

  it('withKey reports the upstream status by itself, honouring Retry-After', async (t) => {
    const clock = new FakeClock();
    const [a, b] = makeKeys(2);
    const s = await startInProcess(t, {
      keys: { plantid: [a!, b!] },
      pools: { plantid: { strategy: 'fill-first' } },
      env: { API_TOKENS: TOKEN },
      clock,
    });
    const up = await upstream(t);
    const kw = createKeywardenClient({ baseUrl: s.url, token: TOKEN });
    const call = () => kw.withKey('plantid', (key) => fetch(up.url, { headers: { 'api-key': key } }));

    up.state.status = 429;
    up.state.headers = { 'retry-after': '30' };
    const res = await call();
    assert.equal(res.status, 429);
    const row = await keyRow(s.url, keyIdOf(a!));
    assert.deepEqual([row.status, row.until, row.reason], ['blocked', clock.now() + 30_000, 'reported 429']);

    up.state.status = 503;
    up.state.headers = {};
    await call();
    assert.equal((await keyRow(s.url, keyIdOf(b!))).failures, 1);
    up.state.status = 200;
    await call();
    assert.equal((await keyRow(s.url, keyIdOf(b!))).failures, 0);
    assert.deepEqual(up.state.seenKeys, [a, b, b]);
  });

  it("withKey reports error when fn throws, and uses a thrown error's status", async (t) => {
    const [a, b] = makeKeys(2);
    const s = await startInProcess(t, {
      keys: { plantid: [a!, b!] },
      pools: { plantid: { strategy: 'fill-first' } },
      env: { API_TOKENS: TOKEN },
    });
    const kw = createKeywardenClient({ baseUrl: s.url, token: TOKEN });
    await assert.rejects(
      kw.withKey('plantid', () => Promise.reject(new Error('socket hang up'))),
      /socket hang up/u,
    );
    assert.equal((await keyRow(s.url, keyIdOf(a!))).failures, 1);
    const axiosLike = Object.assign(new Error('Request failed with status code 401'), {
      response: { status: 401, headers: {} },
    });
    await assert.rejects(
      kw.withKey('plantid', () => Promise.reject(axiosLike)),
      /401/u,
    );
    assert.deepEqual(
      [(await keyRow(s.url, keyIdOf(a!))).status, (await keyRow(s.url, keyIdOf(a!))).reason],
      ['disabled', 'invalid: 401'],
    );
    assert.equal(await kw.withKey('plantid', (key) => key), b); // plain values report ok
  });

  it('the short cache leases uses up front, so limits hold; a bad report drops it', async (t) => {
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:00Z'));
    const [a, b] = makeKeys(2);
    const s = await startInProcess(t, {
      keys: { plantid: [a!, b!] },
      pools: { plantid: { strategy: 'fill-first', limits: { perMinute: 3 } } },
      env: { API_TOKENS: TOKEN },
      clock,
    });
    const kw = createKeywardenClient({ baseUrl: s.url, token: TOKEN, cacheMs: 500, leaseSize: 5, clock: clock.now });
    const used: string[] = [];
    for (let i = 0; i < 6; i++) used.push(await kw.withKey('plantid', (key) => key));
    assert.deepEqual(used, [a, a, a, b, b, b]); // a's lease was cut to its 3 left
    assert.deepEqual(
      [(await keyRow(s.url, keyIdOf(a!))).served.minute, (await keyRow(s.url, keyIdOf(b!))).served.minute],
      [3, 3],
    );
    await assert.rejects(
      kw.withKey('plantid', (key) => key),
      (e: unknown) => e instanceof KeywardenError && e.code === 'no_key_available',
    );

    clock.advance(60_000);
    assert.equal(await kw.withKey('plantid', (key) => key), a); // a new lease on a: 3 uses
    await kw.withKey('plantid', () => ({ status: 429 })); // the second use: a is blocked and the lease dropped
    assert.equal((await keyRow(s.url, keyIdOf(a!))).status, 'blocked');
    assert.equal(await kw.withKey('plantid', (key) => key), b); // not the third use of a's lease
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2026-11-21T12:00:00Z');
    assert.equal(parseRetryAfter('120', now), 120);
    assert.equal(parseRetryAfter('Sat, 21 Nov 2026 12:01:30 GMT', now), 90);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(null, now), undefined);
  });
});
