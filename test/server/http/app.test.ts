import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeKeys } from '../../helpers/keys.js';
import { getJson, startInProcess } from '../../helpers/server.js';

const TOKEN = 'test-token-0123456789abcdef';
const OTHER = 'second-token-0123456789abcdef';

describe('bearer auth on /api/*', () => {
  it('with API_TOKENS set, /api/* needs one of them; /healthz stays open', async (t) => {
    const s = await startInProcess(t, { keys: { plantid: makeKeys(1) }, env: { API_TOKENS: `${TOKEN}, ${OTHER}` } });
    for (const path of ['/api/plantid', '/api/plantid?count=2', '/api/stats', '/api/nosuch']) {
      const none = await getJson(`${s.url}${path}`);
      assert.equal(none.status, 401, path);
      assert.equal(none.body.error, 'unauthorized');
      assert.equal(none.headers.get('www-authenticate'), 'Bearer');
      const wrong = await getJson(`${s.url}${path}`, { headers: { authorization: `Bearer ${TOKEN}x` } });
      assert.equal(wrong.status, 401, path);
    }
    assert.equal(
      (await getJson(`${s.url}/api/plantid`, { headers: { authorization: `Bearer ${TOKEN}` } })).status,
      200,
    );
    assert.equal((await getJson(`${s.url}/api/stats`, { headers: { authorization: `bearer ${OTHER}` } })).status, 200);
    assert.equal((await getJson(`${s.url}/healthz`)).status, 200);
  });

  it('no spelling of a path gets past the token check', async (t) => {
    const s = await startInProcess(t, {
      keys: { plantid: makeKeys(1) },
      env: { API_TOKENS: TOKEN, ADMIN_TOKEN: OTHER },
    });
    for (const path of [
      '/API/plantid',
      '/Api/stats',
      '/api/PLANTID',
      '//api/plantid',
      '/api//plantid',
      '/api/plantid/',
      '/METRICS',
      '/Metrics',
      '/api/%70lantid',
      '/ADMIN/pools',
      '/Admin/pools/plantid/keys',
      '/anything',
    ]) {
      const r = await getJson(`${s.url}${path}`);
      assert.equal(r.status, 401, path);
      assert.ok(!JSON.stringify(r.body).includes('"key"'), path);
    }
    // Authorised, odd spellings do not reach a route either.
    assert.equal(
      (await getJson(`${s.url}/API/plantid`, { headers: { authorization: `Bearer ${TOKEN}` } })).status,
      404,
    );
    assert.equal((await getJson(`${s.url}/HEALTHZ`)).status, 404);
  });

  it('without tokens on loopback the API is open and the server warns', async (t) => {
    const s = await startInProcess(t, { keys: { plantid: makeKeys(1) } });
    assert.equal((await getJson(`${s.url}/api/plantid`)).status, 200);
    assert.ok(s.lines.some((l) => /API_TOKENS is empty/u.test(l) && /"level":"warn"/u.test(l)));
  });
});

describe('errors are JSON', () => {
  it('unknown routes and wrong methods answer JSON, never HTML', async (t) => {
    const s = await startInProcess(t);
    const nf = await getJson(`${s.url}/nothing/here`);
    assert.equal(nf.status, 404);
    assert.deepEqual(nf.body, { error: 'not_found', message: 'no route for /nothing/here' });
    const m = await getJson(`${s.url}/healthz`, { method: 'DELETE' });
    assert.equal(m.status, 405);
    assert.deepEqual(m.body, { error: 'method_not_allowed', message: 'method not allowed on this route' });
    assert.equal(m.headers.get('allow'), 'HEAD, GET');
    assert.match(m.headers.get('content-type') ?? '', /application\/json/u);
    const ni = await getJson(`${s.url}/healthz`, { method: 'PROPFIND' });
    assert.equal(ni.status, 501);
    assert.deepEqual(ni.body, { error: 'not_implemented', message: 'method not implemented' });
  });

  it('the handout route, matched ahead of the router, still answers 405 to other methods and 404 to unknown pools', async (t) => {
    const s = await startInProcess(t, { keys: { plantid: makeKeys(1) } });
    const del = await getJson(`${s.url}/api/plantid`, { method: 'DELETE' });
    assert.equal(del.status, 405);
    assert.equal(del.body.error, 'method_not_allowed');
    assert.equal(del.headers.get('allow'), 'GET');
    const report = await getJson(`${s.url}/api/plantid/report`);
    assert.equal(report.status, 405);
    assert.equal(report.headers.get('allow'), 'POST');
    const unknown = await getJson(`${s.url}/api/nosuchpool`);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error, 'unknown_pool');
    assert.equal((await getJson(`${s.url}/api/stats`)).body.pools.length, 2); // /api/stats is not a pool named stats
  });
});
