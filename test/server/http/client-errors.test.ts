/**
 * Errors the HTTP server itself emits, before Koa sees a request, are JSON like every other:
 * raw requests over a socket, as a broken client or scanner would send them.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { makeKeys } from '../../helpers/keys.js';
import { getJson, startInProcess } from '../../helpers/server.js';

/** Sends `raw` to the server and reads the whole answer (the server closes after a parse error). */
function rawRequest(url: string, raw: string): Promise<{ status: number; headers: string; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.end(raw));
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString('utf8')));
    socket.on('error', reject);
    socket.on('close', () => {
      const [head, body = ''] = data.split('\r\n\r\n');
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/u.exec(head ?? '')?.[1] ?? 0), headers: head ?? '', body });
    });
  });
}

describe('errors from the HTTP parser', () => {
  const cases: Array<[string, string, number, string]> = [
    [
      'a bad chunk size',
      'POST /api/plantid/report HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      400,
      'bad_request',
    ],
    ['a space in the URL', 'GET /api/plant id HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'bad_request'],
    ['an unknown method', 'FOO /api/plantid HTTP/1.1\r\nHost: x\r\n\r\n', 501, 'not_implemented'],
    [
      '20 KB of headers',
      `GET /api/plantid HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      431,
      'headers_too_large',
    ],
  ];
  for (const [what, raw, status, code] of cases) {
    it(`${what} is ${status} ${code} as JSON`, async (t) => {
      const s = await startInProcess(t, { keys: { plantid: makeKeys(1) } });
      const r = await rawRequest(s.url, raw);
      assert.equal(r.status, status, r.headers);
      assert.match(r.headers, /\r\nContent-Type: application\/json; charset=utf-8\r\n/u);
      assert.equal(JSON.parse(r.body).error, code);
      assert.equal(typeof JSON.parse(r.body).message, 'string');
      assert.equal((await getJson(`${s.url}/healthz`)).status, 200); // the server goes on
    });
  }

  it('CONNECT (which Node keeps from Koa, and used to drop without an answer) is a JSON 405 with Allow', async (t) => {
    const s = await startInProcess(t, { keys: { plantid: makeKeys(1) } });
    const r = await rawRequest(s.url, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    assert.equal(r.status, 405, r.headers);
    assert.match(r.headers, /\r\nContent-Type: application\/json; charset=utf-8\r\n/u);
    assert.match(r.headers, /\r\nAllow: GET, HEAD, POST/u);
    assert.equal(JSON.parse(r.body).error, 'method_not_allowed');
    assert.equal((await getJson(`${s.url}/healthz`)).status, 200);
  });

  it('OPTIONS names the methods a route takes in Allow', async (t) => {
    const s = await startInProcess(t, { keys: { plantid: makeKeys(1) } });
    for (const [path, allow] of [
      ['/healthz', 'HEAD, GET'],
      ['/api/plantid', 'GET'],
      ['/api/plantid/report', 'POST'],
    ]) {
      const r = await fetch(`${s.url}${path}`, { method: 'OPTIONS' });
      assert.equal(r.status, 200, path);
      assert.equal(r.headers.get('allow'), allow, path);
    }
    const none = await getJson(`${s.url}/nothing`, { method: 'OPTIONS' });
    assert.deepEqual([none.status, none.body.error], [404, 'not_found']);
  });
});
