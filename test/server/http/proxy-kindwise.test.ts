/**
 * The Kindwise-native proxy through the running server against the fake Kindwise, which keeps an
 * identification to the key that made it: follow-ups go to that key (pins), credits are counted
 * as Kindwise counts them, and no caller's path or upstream's answer can harm or leak a key.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { keyIdOf, maskKey } from '../../../shared/keys.js';
import { fakeUpstream, IDENTIFY, IMAGE, plantid, proxyServer, TOKEN } from '../../helpers/proxy.js';
import { makeKeys } from '../../helpers/keys.js';
import { REDIS_SKIP, TestRedis, redisBackendOn } from '../../helpers/redis.js';
import { call, makeLayout, spawnServer, startInProcess } from '../../helpers/server.js';
import { until } from '../../helpers/wait.js';

const KEY = { 'Api-Key': TOKEN };

describe('Kindwise-native proxy', () => {
  it('follow-ups go to the key that made the identification under round-robin: retrieve, feedback, conversation, delete', async (t) => {
    const fake = await fakeUpstream(t);
    const keys = makeKeys(3);
    for (const k of keys) fake.addKey(k);
    const s = await proxyServer(t, fake, keys);
    for (let round = 0; round < 3; round++) {
      const made = await call(`${s.url}/proxy/plantid${IDENTIFY}`, {
        method: 'POST',
        headers: KEY,
        json: { ...IMAGE, custom_id: 100 + round },
      });
      assert.equal(made.status, 201);
      const owner = made.headers.get('x-keywarden-key-id');
      const token = made.body.access_token as string;
      const steps: Array<[string, string, unknown?]> = [
        ['GET', `${IDENTIFY}/${token}`],
        ['GET', `${IDENTIFY}/${100 + round}`],
        ['POST', `${IDENTIFY}/${token}/feedback`, { comment: 'right' }],
        ['POST', `${IDENTIFY}/${token}/conversation`, { question: 'Is it edible?' }],
        ['GET', `${IDENTIFY}/${token}/conversation`],
        ['POST', `${IDENTIFY}/${token}/conversation/feedback`, { rating: 5 }],
        ['DELETE', `${IDENTIFY}/${token}/conversation`],
        ['DELETE', `${IDENTIFY}/${token}`],
      ];
      for (const [method, path, json] of steps) {
        const r = await call(`${s.url}/proxy/plantid${path}`, {
          method,
          headers: KEY,
          ...(json === undefined ? {} : { json }),
        });
        assert.deepEqual([r.status, r.headers.get('x-keywarden-key-id')], [200, owner], `${method} ${path}`);
      }
    }
    // Creates rotate (round-robin), follow-ups do not move it: three creates went to three keys.
    const creators = fake.requests.filter((r) => r.method === 'POST' && r.path === IDENTIFY).map((r) => r.apiKey);
    assert.deepEqual(creators, keys);
    const p = await plantid(s.url);
    assert.deepEqual(
      p.keys.map((k) => k.served.total),
      [1, 1, 1],
    );
    assert.deepEqual(p.proxy, { requests: 27, free: 24, creditsSpent: 3, failovers: 0, pins: 6 });
  });

  it('served counts are the credits the upstream charged: creates, health "all" creates (2), refused and free calls', async (t) => {
    const fake = await fakeUpstream(t);
    const keys = makeKeys(2);
    for (const k of keys) fake.addKey(k);
    const s = await proxyServer(t, fake, keys);
    const post = (json: unknown) => call(`${s.url}/proxy/plantid${IDENTIFY}`, { method: 'POST', headers: KEY, json });
    const made = [
      await post(IMAGE),
      await post({ ...IMAGE, health: 'all' }),
      await post({ ...IMAGE, health: 'all' }),
      await post(IMAGE),
    ];
    assert.deepEqual(
      made.map((r) => r.status),
      [201, 201, 201, 201],
    );
    assert.equal((await post({ images: [] })).status, 400); // charged nothing: given back
    assert.equal(
      (await call(`${s.url}/proxy/plantid/api/v3/health_assessment`, { method: 'POST', headers: KEY, json: IMAGE }))
        .status,
      201,
    );
    for (const r of made)
      assert.equal(
        (await call(`${s.url}/proxy/plantid${IDENTIFY}/${r.body.access_token}`, { headers: KEY })).status,
        200,
      );
    assert.equal((await call(`${s.url}/proxy/plantid/api/v3/usage_info`, { headers: KEY })).status, 200);
    assert.equal(
      (await call(`${s.url}/proxy/plantid/api/v3/kb/plants/name_search?q=rose`, { headers: KEY })).status,
      200,
    );
    const p = await plantid(s.url);
    const served = p.keys.reduce((n, k) => n + k.served.total, 0);
    assert.equal(fake.charged, 1 + 2 + 2 + 1 + 1);
    assert.equal(served, fake.charged);
    assert.equal(p.proxy.creditsSpent, fake.charged);
    assert.equal(p.proxy.free, 6);
    const metrics = (await call(`${s.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text;
    assert.match(metrics, /^keywarden_proxy_credits_total\{pool="plantid"\} 7$/mu);
    assert.match(metrics, /^keywarden_proxy_free_total\{pool="plantid"\} 6$/mu);
    assert.match(metrics, /^keywarden_proxy_pins\{pool="plantid"\} 5$/mu);
  });

  it('a token made directly at the upstream is found with free calls only, pinned, and the pin survives a restart', async (t) => {
    const fake = await fakeUpstream(t);
    const keys = makeKeys(3);
    for (const k of keys) fake.addKey(k);
    const s = await proxyServer(t, fake, keys);
    const token = fake.identifyDirectly(keys[2]!);
    const found = await call(`${s.url}/proxy/plantid${IDENTIFY}/${token}`, { headers: KEY });
    assert.deepEqual([found.status, found.headers.get('x-keywarden-key-id')], [200, keyIdOf(keys[2]!)]);
    assert.deepEqual(
      fake.received(`${IDENTIFY}/${token}`).map((r) => r.apiKey),
      keys,
    ); // asked in turn
    assert.deepEqual(
      (await plantid(s.url)).keys.map((k) => k.served.total),
      [0, 0, 0],
    );
    await s.stop('restart');

    const again = await startInProcess(t, {
      layout: s.layout,
      env: { API_TOKENS: TOKEN, UPSTREAM_SYNC_INTERVAL_MS: '0' },
    });
    const before = fake.requests.length;
    const retrieved = await call(`${again.url}/proxy/plantid${IDENTIFY}/${token}`, { headers: KEY });
    assert.deepEqual([retrieved.status, fake.requests.length - before], [200, 1]);
    // A ref no key knows: every key is asked, the last 404 is the answer.
    const unknown = await call(`${again.url}/proxy/plantid${IDENTIFY}/nosuchtoken`, { headers: KEY });
    assert.deepEqual([unknown.status, unknown.body], [404, 'Identification not found.']);
  });

  it('a pinned key that is disabled or removed: 409 pinned_key_unavailable and nothing is sent', async (t) => {
    const fake = await fakeUpstream(t);
    const keys = makeKeys(2);
    for (const k of keys) fake.addKey(k);
    const s = await proxyServer(t, fake, keys, { ADMIN_TOKEN: 'admin-token-0123456789abcdef' });
    const made = await call(`${s.url}/proxy/plantid${IDENTIFY}`, { method: 'POST', headers: KEY, json: IMAGE });
    const owner = made.headers.get('x-keywarden-key-id')!;
    const admin = { authorization: 'Bearer admin-token-0123456789abcdef' };
    assert.equal(
      (
        await call(`${s.url}/admin/pools/plantid/keys/${owner}/disable`, {
          method: 'POST',
          headers: admin,
          json: { reason: 'test' },
        })
      ).status,
      204,
    );
    const before = fake.requests.length;
    const r = await call(`${s.url}/proxy/plantid${IDENTIFY}/${made.body.access_token}`, { headers: KEY });
    assert.deepEqual(
      [r.status, r.body.error, r.body.keyId, r.body.keyStatus],
      [409, 'pinned_key_unavailable', owner, 'disabled'],
    );
    assert.equal(fake.requests.length, before);
  });

  it('a path that answers 401 for every key leaves every key available (the key is asked, not believed)', async (t) => {
    const fake = await fakeUpstream(t);
    const keys = makeKeys(3);
    for (const k of keys) fake.addKey(k);
    fake.answer('/api/v3/forbidden', () => ({ status: 401, body: '"Not allowed."' }));
    const s = await proxyServer(t, fake, keys);
    for (let i = 0; i < 3; i++)
      assert.equal((await call(`${s.url}/proxy/plantid/api/v3/forbidden`, { headers: KEY })).status, 401);
    await until('the checks asked', async () => fake.received('/api/v3/usage_info').length >= 3);
    const p = await plantid(s.url);
    assert.deepEqual(
      p.keys.map((k) => k.status),
      ['available', 'available', 'available'],
    );
  });

  it('an upstream that echoes the key in a 401 body, a header and Set-Cookie: the key reaches no caller, stats, state file, log or stdout', async (t) => {
    const fake = await fakeUpstream(t);
    const keys = makeKeys(2);
    for (const k of keys) fake.addKey(k);
    fake.answer('/api/v3/echo', (apiKey) => ({
      status: 401,
      body: JSON.stringify(`The key ${apiKey} is not allowed; also ${keys[1]}.`),
      headers: { 'x-echo': apiKey, 'set-cookie': [`k=${apiKey}; Path=/`] },
    }));
    // The real process: its stdout and log file are what an operator sees.
    const layout = await makeLayout(t, { plantid: keys }, { plantid: { upstream: { origin: fake.url } } });
    const s = await spawnServer(t, layout, {
      API_TOKENS: TOKEN,
      UPSTREAM_SYNC_INTERVAL_MS: '0',
      LOG_LEVEL: 'debug',
      STATE_SAVE_INTERVAL_MS: '50',
    });
    const r = await call(`${s.url}/proxy/plantid/api/v3/echo`, { headers: KEY });
    assert.equal(r.status, 401);
    const seen = [r.text, ...[...r.headers].flat()].join('\n');
    for (const k of keys) assert.ok(!seen.includes(k), 'a key in the caller answer');
    assert.ok(seen.includes(maskKey(keys[1]!).replace('…', '...')), 'the masked form stands in its place');
    await until('checks done', async () => fake.received('/api/v3/usage_info').length >= 2);
    const stats = JSON.stringify(await plantid(s.url));
    assert.equal(await s.kill('SIGTERM'), 0);
    const state = await readFile(layout.stateFile, 'utf8');
    const logFile = await readFile(layout.logFile, 'utf8');
    assert.match(logFile, /proxy plantid GET \/api\/v3\/echo -> 401/u);
    for (const k of keys) {
      for (const [what, text] of [
        ['stats', stats],
        ['state file', state],
        ['log file', logFile],
        ['stdout', s.output()],
      ] as const)
        assert.ok(!text.includes(k), `a key in the ${what}`);
    }
  });

  it('Retry-After of 99999999999 s or an HTTP date in 9999 holds a key at most an hour', async (t) => {
    const fake = await fakeUpstream(t);
    const keys = makeKeys(2);
    for (const k of keys) fake.addKey(k);
    let n = 0;
    fake.answer('/api/v3/slowdown', () => ({
      status: 429,
      body: '"Too many requests."',
      headers: { 'retry-after': n++ === 0 ? '99999999999' : 'Fri, 31 Dec 9999 23:59:59 GMT' },
    }));
    const s = await proxyServer(t, fake, keys);
    const started = Date.now();
    await call(`${s.url}/proxy/plantid/api/v3/slowdown`, { method: 'POST', headers: KEY, json: {} });
    const p = await plantid(s.url);
    const until = p.keys.map((k) => k.until ?? p.throttledUntil);
    for (const u of until)
      assert.ok(
        u !== null && u <= started + 3_600_000 + 60_000,
        `held until ${u === null ? null : new Date(u).toISOString()}`,
      );
  });

  it('slow uploads hold no upstream connection: with 140 callers dripping a byte every 2 s, a normal request is answered', async (t) => {
    const fake = await fakeUpstream(t);
    const keys = makeKeys(2);
    for (const k of keys) fake.addKey(k);
    const s = await proxyServer(t, fake, keys);
    const port = new URL(s.url).port;
    const drips = Array.from({ length: 140 }, () => {
      const req = httpRequest({
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: `/proxy/plantid${IDENTIFY}`,
        headers: { ...KEY, 'content-type': 'application/json', 'content-length': '1000' },
      });
      req.on('error', () => undefined);
      req.write('{');
      const timer = setInterval(() => req.write(' '), 2000);
      return { req, timer };
    });
    t.after(() => {
      for (const d of drips) {
        clearInterval(d.timer);
        d.req.destroy();
      }
    });
    await until('the drips connected', async () =>
      drips.every((d) => d.req.socket !== undefined && d.req.socket !== null),
    );
    const started = performance.now();
    // Were the slow bodies sent on as they arrive, the upstream's 128 connections would all be
    // theirs and this request would wait for them (minutes): the bound turns that into a failure.
    const r = await call(`${s.url}/proxy/plantid${IDENTIFY}`, {
      method: 'POST',
      headers: KEY,
      json: IMAGE,
      signal: AbortSignal.timeout(20_000),
    });
    const ms = performance.now() - started;
    assert.equal(r.status, 201);
    // Every dripping caller is still sending: not even the head of one reached the upstream.
    assert.equal(fake.arrived, 1);
    t.diagnostic(`a normal request took ${ms.toFixed(0)} ms beside 140 slow uploads`);
  });

  it('a slow upload past PROXY_BODY_TIMEOUT_MS: 408 JSON, nothing sent upstream', async (t) => {
    const fake = await fakeUpstream(t);
    const keys = makeKeys(1);
    fake.addKey(keys[0]!);
    const s = await proxyServer(t, fake, keys, { PROXY_BODY_TIMEOUT_MS: '300' });
    const port = new URL(s.url).port;
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: `/proxy/plantid${IDENTIFY}`,
          headers: { ...KEY, 'content-type': 'application/json', 'content-length': '100' },
        },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        },
      );
      req.on('error', reject);
      req.write('{');
    });
    assert.equal(answer.status, 408);
    assert.equal(JSON.parse(answer.body).error, 'body_timeout');
    assert.equal(fake.requests.length, 0);
  });

  it('three concurrent 30 MB 500s reach their callers whole, and memory does not hold them', async (t) => {
    const fake = await fakeUpstream(t);
    const keys = makeKeys(2);
    for (const k of keys) fake.addKey(k);
    const big = Buffer.alloc(30 * 1024 * 1024, 'x');
    fake.answer('/api/v3/broken', () => ({ status: 500, body: big }));
    const s = await proxyServer(t, fake, keys, { PROXY_MAX_ATTEMPTS: '1' });
    const rssBefore = process.memoryUsage().rss;
    let peak = rssBefore;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    const sizes = await Promise.all(
      [0, 1, 2].map(async () => {
        const res = await fetch(`${s.url}/proxy/plantid/api/v3/broken`, { method: 'POST', headers: KEY, body: '{}' });
        let n = 0;
        for await (const chunk of res.body!) n += (chunk as Uint8Array).length;
        return [res.status, n];
      }),
    );
    clearInterval(sampler);
    assert.deepEqual(sizes, [
      [500, big.length],
      [500, big.length],
      [500, big.length],
    ]);
    // The fake itself holds one 30 MB buffer, sent three times; the proxy adds at most its peeks.
    t.diagnostic(`RSS before ${(rssBefore / 2 ** 20).toFixed(0)} MB, peak ${(peak / 2 ** 20).toFixed(0)} MB`);
    assert.ok(peak - rssBefore < 100 * 2 ** 20, `RSS grew ${((peak - rssBefore) / 2 ** 20).toFixed(0)} MB`);
  });
});

describe('Kindwise-native proxy on Redis', { skip: REDIS_SKIP }, () => {
  const redis = new TestRedis();
  before(() => redis.start());
  after(() => redis.destroy());

  it('a second instance on the same Redis sees the pins: a retrieval through it goes to the creating key, one request; a token made at the upstream too', async (t) => {
    const fake = await fakeUpstream(t);
    const keys = makeKeys(3);
    for (const k of keys) fake.addKey(k);
    const layout = await makeLayout(
      t,
      { plantid: keys },
      { plantid: { strategy: 'round-robin', upstream: { origin: fake.url } } },
    );
    const env = { API_TOKENS: TOKEN, UPSTREAM_SYNC_INTERVAL_MS: '0', STATE_BACKEND: 'redis' };
    const backend = redisBackendOn(redis, 'kwpins:');
    const one = await startInProcess(t, { layout, env, backend });
    const two = await startInProcess(t, { layout, env, backend });
    const made: Array<{ token: string; owner: string }> = [];
    for (let i = 0; i < 3; i++) {
      const r = await call(`${one.url}/proxy/plantid${IDENTIFY}`, {
        method: 'POST',
        headers: KEY,
        json: { ...IMAGE, custom_id: 7 },
      });
      made.push({ token: r.body.access_token, owner: r.headers.get('x-keywarden-key-id')! });
    }
    assert.equal(new Set(made.map((m) => m.owner)).size, 3);
    for (const m of made) {
      const before = fake.requests.length;
      const r = await call(`${two.url}/proxy/plantid${IDENTIFY}/${m.token}`, { headers: KEY });
      assert.deepEqual(
        [r.status, r.headers.get('x-keywarden-key-id'), fake.requests.length - before],
        [200, m.owner, 1],
      );
    }
    // The custom id names the latest identification that carried it.
    const byCustom = await call(`${two.url}/proxy/plantid${IDENTIFY}/7`, { headers: KEY });
    assert.deepEqual([byCustom.status, byCustom.body.access_token], [200, made[2]!.token]);
    // A token made at the upstream directly: found through one instance by free calls, pinned for both.
    const direct = fake.identifyDirectly(keys[1]!);
    const found = await call(`${one.url}/proxy/plantid${IDENTIFY}/${direct}`, { headers: KEY });
    assert.deepEqual([found.status, found.headers.get('x-keywarden-key-id')], [200, keyIdOf(keys[1]!)]);
    const before = fake.requests.length;
    const again = await call(`${two.url}/proxy/plantid${IDENTIFY}/${direct}`, { headers: KEY });
    assert.deepEqual(
      [again.status, again.headers.get('x-keywarden-key-id'), fake.requests.length - before],
      [200, keyIdOf(keys[1]!), 1],
    );
    assert.equal((await plantid(two.url)).proxy.pins, 5);
    // Served counts (shared) are the credits charged, once the first instance's leased blocks
    // have lapsed and gone back (the second gives back its own before it reads them).
    await until(
      'the served counts to equal the credits charged',
      async () =>
        (await plantid(two.url)).keys.reduce((n, k) => n + k.served.total, 0) === fake.charged ? true : undefined,
      3000,
    );
  });
});

describe('Kindwise plans, read from usage_info', () => {
  it('a pool without limits takes each key from its plan: the sync sets what it used, and a key at its limit leaves rotation before a 429', async (t) => {
    const fake = await fakeUpstream(t);
    const [small, big] = makeKeys(2);
    fake.addKey(small!, { limits: { day: 3 }, used: { day: 1 } });
    fake.addKey(big!, { limits: { day: 100 }, used: { day: 40 } });
    const s = await proxyServer(
      t,
      fake,
      [small!, big!],
      { UPSTREAM_SYNC_INTERVAL_MS: '60000' },
      { strategy: 'fill-first' },
    );
    await until('the first sync', async () => (await plantid(s.url)).keys.every((k) => k.credits !== null));
    const before = await plantid(s.url);
    assert.deepEqual(
      before.keys.map((k) => [k.served.day, k.remaining]),
      [
        [1, 2],
        [40, 60],
      ],
    );
    const post = () => call(`${s.url}/proxy/plantid${IDENTIFY}`, { method: 'POST', headers: KEY, json: IMAGE });
    const owners = [];
    for (let i = 0; i < 3; i++) owners.push((await post()).headers.get('x-keywarden-key-id'));
    // Two credits were left on the small key; the third create went to the big one, with no 429 first.
    assert.deepEqual(owners, [keyIdOf(small!), keyIdOf(small!), keyIdOf(big!)]);
    assert.equal(fake.requests.filter((r) => r.path === IDENTIFY).length, 3);
    const after = await plantid(s.url);
    assert.deepEqual(
      after.keys.map((k) => [k.status, k.served.day]),
      [
        ['exhausted', 3],
        ['available', 41],
      ],
    );
    assert.equal(after.keys[0]!.reason, 'quota: perDay 3/3');
  });
});
