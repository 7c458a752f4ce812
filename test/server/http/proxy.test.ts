/**
 * Proxy mode through the running server: apps call /proxy/<pool>/… with a Keywarden token, the
 * fake Kindwise upstream on 127.0.0.1 sees the pool's keys, and failover, outcomes and limits
 * happen within one request.
 */
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { keyIdOf } from '../../../shared/keys.js';
import type { StatsResponse } from '../../../shared/stats.js';
import { FakeClock } from '../../helpers/clock.js';
import { fakeUpstream, IDENTIFY, IMAGE, plantid, proxyServer, TOKEN } from '../../helpers/proxy.js';
import { makeKeys } from '../../helpers/keys.js';
import { call, postJson, startInProcess } from '../../helpers/server.js';
import { until } from '../../helpers/wait.js';

describe('proxy mode', () => {
  it('an identification goes through with a real key put in; the caller token (bearer or Api-Key, as an SDK sends it) never reaches the upstream', async (t) => {
    const fake = await fakeUpstream(t);
    const [a, b] = makeKeys(2);
    for (const k of [a!, b!]) fake.addKey(k, { limits: { day: 100 } });
    const s = await proxyServer(t, fake, [a!, b!]);

    const viaBearer = await call(`${s.url}/proxy/plantid${IDENTIFY}?details=common_names`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'x-trace': 'abc' },
      json: IMAGE,
    });
    assert.equal(viaBearer.status, 201);
    assert.equal(viaBearer.body.status, 'COMPLETED');
    assert.equal(viaBearer.headers.get('x-keywarden-key-id'), keyIdOf(a!));
    assert.equal(viaBearer.headers.get('x-keywarden-attempts'), '1');
    const sdkStyle = await call(`${s.url}/proxy/plantid${IDENTIFY}`, {
      method: 'POST',
      headers: { 'Api-Key': TOKEN },
      json: IMAGE,
    });
    assert.equal(sdkStyle.status, 201);
    assert.equal(sdkStyle.headers.get('x-keywarden-key-id'), keyIdOf(b!));
    // A retrieval goes to the key that made the identification (pinned from the create's answer),
    // not to the next key in turn: the fake, like Kindwise, knows it only there.
    const retrieved = await call(`${s.url}/proxy/plantid${IDENTIFY}/${sdkStyle.body.access_token}`, {
      headers: { 'Api-Key': TOKEN },
    });
    assert.deepEqual(
      [retrieved.status, retrieved.body.access_token, retrieved.headers.get('x-keywarden-key-id')],
      [200, sdkStyle.body.access_token, keyIdOf(b!)],
    );

    const seen = fake.received(IDENTIFY);
    assert.deepEqual(
      seen.map((r) => r.apiKey),
      [a, b],
    );
    assert.equal(seen[0]!.query, 'details=common_names');
    assert.equal(seen[0]!.headers['x-trace'], 'abc');
    // Hop-by-hop headers (and those the Connection header names) stay on this hop; raw, since fetch may not send them.
    const hop = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        `${s.url}/proxy/plantid/api/v3/usage_info`,
        {
          headers: {
            'Api-Key': TOKEN,
            connection: 'keep-alive, x-hop',
            'x-hop': 'drop me',
            'keep-alive': 'timeout=5',
            te: 'trailers',
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode!));
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(hop, 200);
    const last = fake.requests.at(-1)!;
    assert.deepEqual(
      [last.headers['x-hop'], last.headers['keep-alive'], last.headers.te],
      [undefined, undefined, undefined],
    );
    for (const r of fake.requests) {
      assert.equal(r.authorization, null);
      assert.notEqual(r.apiKey, TOKEN);
      assert.ok(!JSON.stringify(r.headers).includes(TOKEN));
    }
    assert.deepEqual([fake.remaining(a!).day, fake.remaining(b!).day], [99, 99]);
    // One log line a request: pool, method, path without query, keyIds and statuses; no key, no token.
    const line = s.lines.find((l) => l.includes(`proxy plantid POST ${IDENTIFY} -> 201`))!;
    assert.ok(line.includes(`${keyIdOf(a!)} 201`) && !line.includes('details='));
    for (const l of s.lines)
      for (const secret of [a!, b!, TOKEN]) assert.ok(!l.includes(secret), 'a log line holds a key or the token');
  });

  it('LOG_ACCESS=false turns the line a proxied request gets off; warnings still come', async (t) => {
    const fake = await fakeUpstream(t);
    const [a] = makeKeys(1);
    fake.addKey(a!, { limits: { day: 100 } });
    const s = await proxyServer(t, fake, [a!], { LOG_ACCESS: 'false' });
    const r = await call(`${s.url}/proxy/plantid${IDENTIFY}`, {
      method: 'POST',
      headers: { 'Api-Key': TOKEN },
      json: IMAGE,
    });
    assert.equal(r.status, 201);
    assert.deepEqual(
      s.lines.filter((l) => l.includes('proxy plantid')),
      [],
    );
  });

  it('a dead key (401) and one out of credits (429 naming its limit) are skipped within the same request and marked in stats', async (t) => {
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:00Z'));
    const fake = await fakeUpstream(t, clock);
    const [dead, spent, good] = makeKeys(3);
    fake.addKey(spent!, { limits: { day: 5 }, used: { day: 5 } });
    fake.addKey(good!);
    const s = await proxyServer(t, fake, [dead!, spent!, good!], {}, {}, clock);
    const r = await call(`${s.url}/proxy/plantid${IDENTIFY}`, {
      method: 'POST',
      headers: { 'Api-Key': TOKEN },
      json: IMAGE,
    });
    assert.equal(r.status, 201);
    assert.deepEqual(
      [r.headers.get('x-keywarden-key-id'), r.headers.get('x-keywarden-attempts')],
      [keyIdOf(good!), '3'],
    );
    assert.deepEqual(
      fake.received(IDENTIFY).map((q) => q.apiKey),
      [dead, spent, good],
    );
    // A 401 alone proves nothing (the caller chose the path): the key's usage_info is asked at
    // once, meanwhile the request failed over; the key's status follows that answer.
    await until(
      'the dead key invalid',
      async () => (await plantid(s.url)).keys.find((x) => x.keyId === keyIdOf(dead!))!.status === 'invalid',
    );
    const p = await plantid(s.url);
    const row = (k: string) => p.keys.find((x) => x.keyId === keyIdOf(k))!;
    assert.deepEqual([row(dead!).status, row(dead!).reason], ['invalid', 'upstream: The specified api key not found.']);
    assert.deepEqual(
      fake.received('/api/v3/usage_info').map((q) => q.apiKey),
      [dead],
    );
    assert.deepEqual(
      [row(spent!).status, row(spent!).reason, row(spent!).until],
      ['exhausted', 'upstream: Your api key reached its day credit limit (5).', Date.parse('2026-11-22T00:00:00Z')],
    );
    assert.equal(row(good!).status, 'available');
    // The next request goes straight to the good key.
    const again = await call(`${s.url}/proxy/plantid${IDENTIFY}`, {
      method: 'POST',
      headers: { 'Api-Key': TOKEN },
      json: IMAGE,
    });
    assert.deepEqual([again.status, again.headers.get('x-keywarden-attempts')], [201, '1']);
    const metrics = (await call(`${s.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).body as string;
    for (const line of [
      'keywarden_proxy_requests_total{pool="plantid",status="201"} 2',
      'keywarden_proxy_attempts_total{pool="plantid",outcome="invalid"} 1',
      'keywarden_proxy_attempts_total{pool="plantid",outcome="refused"} 1',
      'keywarden_proxy_attempts_total{pool="plantid",outcome="ok"} 2',
      'keywarden_proxy_upstream_duration_seconds_count{pool="plantid"} 4',
    ]) {
      assert.ok(metrics.split('\n').includes(line), line);
    }
  });

  it("on a pool whose sync runs, a 401 through the proxy is the upstream's verdict: the next sync lifts it", async (t) => {
    const fake = await fakeUpstream(t);
    const [a, b] = makeKeys(2);
    for (const k of [a!, b!]) fake.addKey(k);
    const s = await proxyServer(t, fake, [a!, b!], {
      UPSTREAM_SYNC_INTERVAL_MS: '600000',
      ADMIN_TOKEN: 'proxy-admin-token-0123456789',
    });
    await until(
      'the start-up sync',
      async () => fake.received('/api/v3/usage_info').length === 2 && (await plantid(s.url)).upstreamSync !== null,
    );
    fake.setActive(a!, false);
    const r = await call(`${s.url}/proxy/plantid${IDENTIFY}`, {
      method: 'POST',
      headers: { 'Api-Key': TOKEN },
      json: IMAGE,
    });
    assert.deepEqual([r.status, r.headers.get('x-keywarden-key-id')], [201, keyIdOf(b!)]);
    let row = (await plantid(s.url)).keys[0]!;
    assert.deepEqual([row.status, row.reason], ['invalid', 'upstream: The specified api key is not active.']);
    fake.setActive(a!, true);
    await postJson(`${s.url}/admin/pools/plantid/check`, '', { authorization: 'Bearer proxy-admin-token-0123456789' });
    row = (await plantid(s.url)).keys[0]!;
    assert.equal(row.status, 'available');
  });

  it('when every key is refused the caller gets the last answer as it was', async (t) => {
    const fake = await fakeUpstream(t);
    const keys = makeKeys(4); // none known upstream
    const s = await proxyServer(t, fake, keys, { PROXY_MAX_ATTEMPTS: '3' });
    const r = await call(`${s.url}/proxy/plantid${IDENTIFY}`, {
      method: 'POST',
      headers: { 'Api-Key': TOKEN },
      json: IMAGE,
    });
    assert.deepEqual(
      [r.status, r.body, r.headers.get('x-keywarden-attempts')],
      [401, 'The specified api key not found.', '3'],
    );
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.equal(fake.received(IDENTIFY).length, 3);
  });

  it("a 400 is the caller's: passed through after exactly one upstream request, and the key stays healthy", async (t) => {
    const fake = await fakeUpstream(t);
    const [a, b] = makeKeys(2);
    for (const k of [a!, b!]) fake.addKey(k);
    const s = await proxyServer(t, fake, [a!, b!]);
    const r = await call(`${s.url}/proxy/plantid${IDENTIFY}`, {
      method: 'POST',
      headers: { 'Api-Key': TOKEN },
      json: { images: [] },
    });
    assert.deepEqual([r.status, r.body], [400, 'Invalid image data.']);
    assert.equal(fake.received(IDENTIFY).length, 1);
    const p = await plantid(s.url);
    assert.deepEqual(
      p.keys.map((k) => [k.status, k.failures]),
      [
        ['available', 0],
        ['available', 0],
      ],
    );
  });

  it('a POST that gets a 500 is sent once (it may have spent credits), unless the pool allows resending; a GET is retried', async (t) => {
    const fake = await fakeUpstream(t);
    const keys = makeKeys(3);
    for (const k of keys) fake.addKey(k);
    const s = await proxyServer(t, fake, keys);
    fake.fail('500', 1);
    const post = await call(`${s.url}/proxy/plantid${IDENTIFY}`, {
      method: 'POST',
      headers: { 'Api-Key': TOKEN },
      json: IMAGE,
    });
    assert.deepEqual(
      [post.status, post.body, post.headers.get('x-keywarden-attempts')],
      [500, { detail: 'Internal server error.' }, '1'],
    );
    assert.equal(fake.received(IDENTIFY).length, 1);
    fake.fail('500', 1);
    const get = await call(`${s.url}/proxy/plantid/api/v3/usage_info`, { headers: { 'Api-Key': TOKEN } });
    assert.deepEqual([get.status, get.headers.get('x-keywarden-attempts')], [200, '2']);
    assert.equal(fake.received('/api/v3/usage_info').length, 2);
    // The 5xx counted as an error against its key (one error does not block it).
    assert.equal(
      (await plantid(s.url)).keys.reduce((n, k) => n + k.failures, 0),
      2,
    );

    const lenient = await proxyServer(t, fake, keys, {}, { proxyRetryPost: true });
    fake.fail('503', 1);
    const resent = await call(`${lenient.url}/proxy/plantid${IDENTIFY}`, {
      method: 'POST',
      headers: { 'Api-Key': TOKEN },
      json: IMAGE,
    });
    assert.deepEqual([resent.status, resent.headers.get('x-keywarden-attempts')], [201, '2']);
  });

  it('a 10 MB body passes; a body over PROXY_MAX_BODY_BYTES is 413 with nothing sent', async (t) => {
    const fake = await fakeUpstream(t);
    const [a] = makeKeys(1);
    fake.addKey(a!);
    const s = await proxyServer(t, fake, [a!], { PROXY_MAX_BODY_BYTES: String(11 * 1024 * 1024) });
    const big = { images: [`data:image/jpeg;base64,${'A'.repeat(10 * 1024 * 1024)}`] };
    const ok = await call(`${s.url}/proxy/plantid${IDENTIFY}`, {
      method: 'POST',
      headers: { 'Api-Key': TOKEN },
      json: big,
    });
    assert.equal(ok.status, 201);
    assert.ok(fake.received(IDENTIFY)[0]!.bodyBytes > 10 * 1024 * 1024);

    const tooBig = Buffer.alloc(11 * 1024 * 1024 + 1, 0x41);
    const refused = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        `${s.url}/proxy/plantid${IDENTIFY}`,
        {
          method: 'POST',
          headers: { 'Api-Key': TOKEN, 'content-type': 'application/json', 'content-length': tooBig.length },
        },
        (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        },
      );
      req.on('error', reject);
      req.end(tooBig);
    });
    assert.equal(refused.status, 413);
    assert.equal(JSON.parse(refused.body).error, 'payload_too_large');
    assert.equal(fake.received(IDENTIFY).length, 1);
    // Sent in chunks with no length given, the limit holds as well.
    const chunked = await fetch(`${s.url}/proxy/plantid${IDENTIFY}`, {
      method: 'POST',
      headers: { 'Api-Key': TOKEN },
      body: new ReadableStream({
        start(c) {
          for (let i = 0; i < 12; i++) c.enqueue(new Uint8Array(1024 * 1024));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    assert.equal(chunked.status, 413);
    assert.equal(fake.received(IDENTIFY).length, 1);
    // A chunked body within the limit is read whole, then sent with its length.
    const json = new TextEncoder().encode(JSON.stringify(IMAGE));
    const small = await fetch(`${s.url}/proxy/plantid${IDENTIFY}`, {
      method: 'POST',
      headers: { 'Api-Key': TOKEN, 'content-type': 'application/json' },
      body: new ReadableStream({
        start(c) {
          c.enqueue(json.slice(0, 5));
          c.enqueue(json.slice(5));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    assert.equal(small.status, 201);
    assert.equal(fake.received(IDENTIFY)[1]!.headers['content-length'], String(json.length));
  });

  it('a caller that disconnects aborts the upstream request', async (t) => {
    const fake = await fakeUpstream(t);
    const [a] = makeKeys(1);
    fake.addKey(a!);
    const s = await proxyServer(t, fake, [a!]);
    fake.fail('hang');
    const caller = new AbortController();
    const pending = fetch(`${s.url}/proxy/plantid/api/v3/usage_info`, {
      headers: { 'Api-Key': TOKEN },
      signal: caller.signal,
    }).catch((e: Error) => e);
    await until('the request to reach the upstream', async () => fake.requests.length === 1);
    caller.abort();
    await pending;
    await until('the upstream request to be aborted', async () => fake.closedWhileHanging === 1);
    await until('the log line', async () => s.lines.some((l) => l.includes('-> 499') && l.includes('caller gone')));
    assert.equal((await plantid(s.url)).keys[0]!.failures, 0); // not the key's fault
  });

  it('no key: 503 with Retry-After and the upstream sees nothing; a wrong token: 401 and the upstream sees nothing', async (t) => {
    const fake = await fakeUpstream(t);
    const [a] = makeKeys(1);
    fake.addKey(a!);
    const s = await proxyServer(t, fake, [a!], {}, { limits: { perMinute: 1 } });
    assert.equal(
      (await call(`${s.url}/proxy/plantid${IDENTIFY}`, { method: 'POST', headers: { 'Api-Key': TOKEN }, json: IMAGE }))
        .status,
      201,
    );
    const none = await call(`${s.url}/proxy/plantid${IDENTIFY}`, {
      method: 'POST',
      headers: { 'Api-Key': TOKEN },
      json: IMAGE,
    });
    assert.equal(none.status, 503);
    assert.equal(none.body.error, 'no_key_available');
    assert.ok(Number(none.headers.get('retry-after')) >= 1);
    assert.equal(fake.requests.length, 1);

    for (const headers of [
      { 'Api-Key': 'wrong-token-0123456789' },
      { authorization: 'Bearer wrong-token-0123456789' },
      {},
    ] as Array<Record<string, string>>) {
      const r = await call(`${s.url}/proxy/plantid${IDENTIFY}`, { method: 'POST', headers, json: IMAGE });
      assert.deepEqual([r.status, r.body.error], [401, 'unauthorized']);
    }
    assert.equal(fake.requests.length, 1);
    assert.equal((await call(`${s.url}/proxy/nosuch/x`, { headers: { 'Api-Key': TOKEN } })).status, 404);
  });

  it('other APIs: a key in a header with a format, or in a query parameter; answers stream back as they come', async (t) => {
    const seen: Array<{ url: string; headers: IncomingMessage['headers'] }> = [];
    let release: () => void = () => {};
    const upstream = createServer((req, res) => {
      seen.push({ url: req.url!, headers: req.headers });
      if (req.url!.startsWith('/slow')) {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first;');
        release = () => res.end('second');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'] });
      res.end('{"ok":true}');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    t.after(() => new Promise<void>((r) => upstream.close(() => r())));
    const origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const [k1, k2] = makeKeys(2);
    const s = await startInProcess(t, {
      keys: { weather: [k1!], search: [k2!] },
      pools: {
        weather: { upstream: { type: 'header', origin, header: 'Authorization', format: 'Bearer {key}' } },
        search: { upstream: { type: 'query', origin, param: 'key' } },
      },
      env: { API_TOKENS: TOKEN },
    });
    const w = await call(`${s.url}/proxy/weather/v1/forecast?city=Brno`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.deepEqual([w.status, w.body, w.headers.get('set-cookie')], [200, { ok: true }, 'a=1, b=2']);
    assert.deepEqual([seen[0]!.url, seen[0]!.headers.authorization], ['/v1/forecast?city=Brno', `Bearer ${k1}`]);
    const q = await call(`${s.url}/proxy/search/find?q=fern&key=${TOKEN}`);
    assert.equal(q.status, 200);
    assert.equal(seen[1]!.url, `/find?q=fern&key=${k2}`);
    assert.equal(seen[1]!.headers.authorization, undefined);

    const res = await fetch(`${s.url}/proxy/weather/slow`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const reader = res.body!.getReader();
    const first = await reader.read();
    assert.equal(new TextDecoder().decode(first.value), 'first;'); // here before the upstream finished
    release();
    let rest = '';
    for (let c = await reader.read(); !c.done; c = await reader.read()) rest += new TextDecoder().decode(c.value);
    assert.equal(rest, 'second');
  });

  it('an upstream with no way to ask about a key: a 401 holds the key out 60 s, then 120 s on a repeat, never disables it', async (t) => {
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:00Z'));
    const upstream = createServer((req, res) => {
      res.writeHead(req.url!.startsWith('/denied') ? 401 : 200, { 'content-type': 'application/json' });
      res.end('{"message":"no"}');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    t.after(() => new Promise<void>((r) => upstream.close(() => r())));
    const origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const [k1, k2, k3] = makeKeys(3);
    const s = await startInProcess(t, {
      clock,
      keys: { weather: [k1!, k2!, k3!] },
      pools: { weather: { strategy: 'fill-first', upstream: { type: 'header', origin, header: 'X-Key' } } },
      env: { API_TOKENS: TOKEN, PROXY_MAX_ATTEMPTS: '1' },
    });
    const weather = async () =>
      (
        (await call(`${s.url}/api/stats?pool=weather`, { headers: { authorization: `Bearer ${TOKEN}` } }))
          .body as StatsResponse
      ).pools[0]!.keys[0]!;
    const denied = () => call(`${s.url}/proxy/weather/denied`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal((await denied()).status, 401);
    const first = await until('the key held', async () =>
      (await weather()).status === 'blocked' ? weather() : undefined,
    );
    assert.deepEqual([first.keyId, first.status, first.until], [keyIdOf(k1!), 'blocked', clock.now() + 60_000]);
    clock.advance(60_000); // back, on probation: the next call tries it
    assert.equal((await denied()).status, 401);
    const second = await until('held again', async () =>
      (await weather()).status === 'blocked' ? weather() : undefined,
    );
    assert.deepEqual([second.status, second.until], ['blocked', clock.now() + 120_000]);
  });
});
