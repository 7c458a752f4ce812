import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keyIdOf, maskKey } from '../../../shared/keys.js';
import type { StatsResponse } from '../../../shared/stats.js';
import { FakeClock } from '../../helpers/clock.js';
import { makeKeys } from '../../helpers/keys.js';
import { getJson, postJson, startInProcess } from '../../helpers/server.js';
import { handoutJson } from '../../../server/http/handout.js';

describe('GET /api/<pool>', () => {
  it('hands out keys in rotation with pool, key, keyId and remaining', async (t) => {
    const keys = makeKeys(2);
    const s = await startInProcess(t, { keys: { plantid: keys } });
    const first = await getJson(`${s.url}/api/plantid`);
    assert.equal(first.status, 200);
    assert.deepEqual(first.body, { pool: 'plantid', key: keys[0], keyId: keyIdOf(keys[0]!), remaining: 0 });
    assert.equal(first.headers.get('cache-control'), 'no-store');
    assert.equal((await getJson(`${s.url}/api/plantid`)).body.key, keys[1]);
    assert.equal((await getJson(`${s.url}/api/plantid`)).body.key, keys[0]);
  });

  it('a handout is JSON with exact length and no-store, over a kept-alive connection; HEAD is refused and uses no key', async (t) => {
    const keys = makeKeys(2);
    const s = await startInProcess(t, { keys: { plantid: keys } });
    const r = await fetch(`${s.url}/api/plantid`);
    const text = await r.text();
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8');
    assert.equal(r.headers.get('content-length'), String(Buffer.byteLength(text)));
    assert.equal(r.headers.get('cache-control'), 'no-store');
    assert.equal(r.headers.get('connection'), 'keep-alive');
    assert.deepEqual(JSON.parse(text), { pool: 'plantid', key: keys[0], keyId: keyIdOf(keys[0]!), remaining: 0 });
    const head = await fetch(`${s.url}/api/plantid`, { method: 'HEAD' });
    assert.equal(head.status, 405);
    assert.equal(head.headers.get('allow'), 'GET');
    assert.equal(await head.text(), '');
    assert.equal((await fetch(`${s.url}/api/nosuchpool`, { method: 'HEAD' })).status, 405);
    assert.equal((await fetch(`${s.url}/api/stats`, { method: 'HEAD' })).status, 200);
    const again = await getJson(`${s.url}/api/plantid`); // the HEAD used nothing: keys[1] is next
    assert.equal(again.body.key, keys[1]);
    const stats = (await getJson(`${s.url}/api/stats`)).body as StatsResponse;
    assert.deepEqual(
      stats.pools[0]!.keys!.map((k) => k.served.total),
      [1, 1],
    );
  });

  it('?count= leases several uses of one key; a bad count is 400 invalid_query', async (t) => {
    const keys = makeKeys(2);
    const s = await startInProcess(t, { keys: { plantid: keys }, pools: { plantid: { limits: { perMinute: 5 } } } });
    const lease = await getJson(`${s.url}/api/plantid?count=3`);
    assert.deepEqual(lease.body, { pool: 'plantid', key: keys[0], keyId: keyIdOf(keys[0]!), remaining: 0, granted: 3 }); // remaining: its turn is over
    const plain = await getJson(`${s.url}/api/plantid?`); // an empty query is no query
    assert.deepEqual(plain.body, { pool: 'plantid', key: keys[1], keyId: keyIdOf(keys[1]!), remaining: 0 });
    for (const count of ['0', '1001', 'abc', '2.5', '-1', '']) {
      const r = await getJson(`${s.url}/api/plantid?count=${count}`);
      assert.equal(r.status, 400, count);
      assert.deepEqual(r.body, { error: 'invalid_query', message: 'count: must be a whole number from 1 to 1000' });
    }
    const stats = (await getJson(`${s.url}/api/stats`)).body as StatsResponse;
    assert.deepEqual(
      stats.pools[0]!.keys!.map((k) => k.served.total),
      [3, 1],
    ); // the bad requests used nothing
  });

  it('unknown pools and invalid pool names are 404 unknown_pool', async (t) => {
    const s = await startInProcess(t);
    for (const name of ['nosuch', 'Plantid', 'a'.repeat(65), 'pl%20ant']) {
      const r = await getJson(`${s.url}/api/${name}`);
      assert.equal(r.status, 404, name);
      assert.equal(r.body.error, 'unknown_pool');
    }
  });

  it('no usable key is 503 no_key_available with Retry-After when a key comes back', async (t) => {
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:20Z'));
    const s = await startInProcess(t, {
      keys: { plantid: makeKeys(1) },
      pools: { plantid: { limits: { perMinute: 1 } } },
      clock,
    });
    assert.equal((await getJson(`${s.url}/api/plantid`)).status, 200);
    const r = await getJson(`${s.url}/api/plantid`);
    assert.equal(r.status, 503);
    assert.equal(r.body.error, 'no_key_available');
    assert.equal(r.body.retryAfter, 40);
    assert.equal(r.headers.get('retry-after'), '40');
    assert.equal(r.headers.get('cache-control'), 'no-store');
    assert.equal(typeof r.body.message, 'string');
  });

  it('an empty pool is 503 with retryAfter null and no Retry-After header', async (t) => {
    const s = await startInProcess(t);
    const r = await getJson(`${s.url}/api/healthid`);
    assert.equal(r.status, 503);
    assert.equal(r.body.retryAfter, null);
    assert.equal(r.headers.get('retry-after'), null);
  });

  it('the pool-wide limit is 429 with Retry-After', async (t) => {
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:50Z'));
    const s = await startInProcess(t, {
      keys: { plantid: makeKeys(3) },
      pools: { plantid: { poolPerMinute: 2 } },
      clock,
    });
    await getJson(`${s.url}/api/plantid`);
    await getJson(`${s.url}/api/plantid`);
    const r = await getJson(`${s.url}/api/plantid`);
    assert.equal(r.status, 429);
    assert.equal(r.body.error, 'pool_rate_limited');
    assert.equal(r.body.retryAfter, 10);
    assert.equal(r.headers.get('retry-after'), '10');
  });

  it('pools named in pools.json exist and read <name>.txt', async (t) => {
    const keys = makeKeys(1);
    const s = await startInProcess(t, { keys: { weather: keys }, pools: { weather: { strategy: 'fill-first' } } });
    const r = await getJson(`${s.url}/api/weather`);
    assert.equal(r.body.key, keys[0]);
    assert.equal(r.body.remaining, null);
  });
});

describe('handoutJson', () => {
  it('is the text JSON.stringify makes of the handout, for any key and remaining', () => {
    const keys = [
      'plain-KEY_0123',
      'quo"te',
      'back\\slash\\',
      'uni\u00e9\u4e2d\u{1f511}',
      'lone\ud800surrogate',
      '</script>',
      'a\u2028b',
    ];
    for (const key of keys) {
      for (const remaining of [null, 0, 7, 123456789, Infinity]) {
        const h = { ok: true as const, key, keyId: keyIdOf(key), remaining, granted: 3 };
        assert.equal(
          handoutJson('plantid', h, false),
          JSON.stringify({ pool: 'plantid', key, keyId: h.keyId, remaining }),
          key,
        );
        assert.equal(
          handoutJson('plantid', h, true),
          JSON.stringify({ pool: 'plantid', key, keyId: h.keyId, remaining, granted: 3 }),
          key,
        );
      }
    }
  });
});

describe('POST /api/<pool>/report', () => {
  it('204 on a valid report; rate_limited takes the key out for retryAfter', async (t) => {
    const clock = new FakeClock();
    const [a, b] = makeKeys(2);
    const s = await startInProcess(t, { keys: { plantid: [a!, b!] }, clock });
    const r = await postJson(`${s.url}/api/plantid/report`, {
      keyId: keyIdOf(a!),
      outcome: 'rate_limited',
      retryAfter: 30,
    });
    assert.equal(r.status, 204);
    assert.equal((await getJson(`${s.url}/api/plantid`)).body.key, b);
    assert.equal((await getJson(`${s.url}/api/plantid`)).body.key, b);
    clock.advance(30_000);
    assert.equal((await getJson(`${s.url}/api/plantid`)).body.key, a);
  });

  it('a report may say what the call really cost in credits: the key is counted that, its limits follow', async (t) => {
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:10Z'));
    const [a, b] = makeKeys(2);
    const s = await startInProcess(t, {
      keys: { plantid: [a!, b!] },
      pools: { plantid: { strategy: 'fill-first', limits: { perDay: 4 } } },
      clock,
    });
    const served = async () =>
      ((await getJson(`${s.url}/api/stats?pool=plantid`)).body as StatsResponse).pools[0]!.keys.map(
        (k) => k.served.day,
      );
    assert.equal((await getJson(`${s.url}/api/plantid`)).body.key, a);
    assert.equal(
      (await postJson(`${s.url}/api/plantid/report`, { keyId: keyIdOf(a!), outcome: 'ok', credits: 2 })).status,
      204,
    );
    assert.equal((await getJson(`${s.url}/api/plantid`)).body.key, a);
    assert.equal(
      (await postJson(`${s.url}/api/plantid/report`, { keyId: keyIdOf(a!), outcome: 'ok', credits: 0 })).status,
      204,
    );
    assert.deepEqual(await served(), [2, 0]); // 2, then a call that cost nothing
    assert.equal((await getJson(`${s.url}/api/plantid`)).body.key, a);
    assert.equal(
      (await postJson(`${s.url}/api/plantid/report`, { keyId: keyIdOf(a!), outcome: 'ok', credits: 2 })).status,
      204,
    );
    assert.deepEqual(await served(), [4, 0]);
    assert.equal((await getJson(`${s.url}/api/plantid`)).body.key, b); // a is at its perDay
    const history = (await getJson(`${s.url}/api/stats/history?pool=plantid&range=1h`)).body;
    assert.equal(history.counts.credits.at(-1), 4);
  });

  it('400 names what is wrong in a bad body', async (t) => {
    const [a] = makeKeys(1);
    const s = await startInProcess(t, { keys: { plantid: [a!] } });
    const cases: Array<[unknown, RegExp]> = [
      [{ outcome: 'ok' }, /^keyId: /u],
      [{ keyId: 'xyz', outcome: 'ok' }, /^keyId: /u],
      [
        { keyId: keyIdOf(a!), outcome: 'great' },
        /^outcome: must be one of ok, rate_limited, exhausted, invalid, error/u,
      ],
      [{ keyId: keyIdOf(a!) }, /^outcome: give an outcome/u],
      [{ keyId: keyIdOf(a!), outcome: 'rate_limited', retryAfter: -1 }, /^retryAfter: /u],
      [{ keyId: keyIdOf(a!), outcome: 'ok', extra: 1 }, /unknown field extra/u],
      [{ keyId: keyIdOf(a!), outcome: 'ok', credits: 1.5 }, /^credits: must be a whole number of credits/u],
      [{ keyId: keyIdOf(a!), outcome: 'ok', credits: -1 }, /^credits: must be 0 or more/u],
      [[1, 2], /^body: /u],
    ];
    for (const [body, message] of cases) {
      const r = await postJson(`${s.url}/api/plantid/report`, body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.error, 'invalid_body');
      assert.match(r.body.message, message);
    }
  });

  it('malformed JSON is 400 invalid_json; a body over 16 KiB is 413', async (t) => {
    const s = await startInProcess(t, { keys: { plantid: makeKeys(1) } });
    const bad = await postJson(`${s.url}/api/plantid/report`, '{"keyId": ');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error, 'invalid_json');
    const big = await postJson(`${s.url}/api/plantid/report`, JSON.stringify({ keyId: 'a'.repeat(17 * 1024) }));
    assert.equal(big.status, 413);
    assert.equal(big.body.error, 'payload_too_large');
    // Without a Content-Length (chunked), the limit still holds.
    const chunked = await getJson(`${s.url}/api/plantid/report`, {
      method: 'POST',
      body: new ReadableStream({
        start(c) {
          for (let i = 0; i < 20; i++) c.enqueue(new TextEncoder().encode('x'.repeat(1024)));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    assert.equal(chunked.status, 413);
  });

  it('an unknown keyId is 404 unknown_key; an unknown pool is 404 unknown_pool', async (t) => {
    const s = await startInProcess(t, { keys: { plantid: makeKeys(1) } });
    const r = await postJson(`${s.url}/api/plantid/report`, { keyId: 'abcdefabcdef', outcome: 'ok' });
    assert.equal(r.status, 404);
    assert.equal(r.body.error, 'unknown_key');
    assert.equal(
      (await postJson(`${s.url}/api/nope/report`, { keyId: 'abcdefabcdef', outcome: 'ok' })).body.error,
      'unknown_pool',
    );
  });
});

describe('GET /api/stats and /healthz', () => {
  it('stats show every pool, masked keys, counts, current key and key-file status; never a key', async (t) => {
    const keys = makeKeys(3);
    const s = await startInProcess(t, {
      keys: { plantid: [...keys, 'has space', keys[0]!] },
      pools: { plantid: { limits: { perDay: 10 } } },
    });
    await getJson(`${s.url}/api/plantid`);
    await postJson(`${s.url}/api/plantid/report`, { keyId: keyIdOf(keys[2]!), outcome: 'invalid' });
    const r = await getJson(`${s.url}/api/stats`);
    assert.equal(r.status, 200);
    const stats = r.body as StatsResponse;
    for (const k of keys) assert.ok(!JSON.stringify(stats).includes(k));
    assert.equal(stats.version, 'test');
    assert.deepEqual(
      stats.pools.map((p) => p.name),
      ['plantid', 'healthid'],
    );
    const p = stats.pools[0]!;
    assert.equal(p.total, 3);
    assert.equal(p.available, 2);
    assert.equal(p.disabled, 1);
    assert.deepEqual(p.current, { keyId: keyIdOf(keys[0]!), masked: maskKey(keys[0]!), remaining: 0 });
    assert.equal(p.keyFile.present, true);
    assert.equal(p.keyFile.keyCount, 3);
    assert.equal(p.keyFile.skippedLines, 2);
    assert.equal(typeof p.keyFile.modifiedAt, 'number');
    assert.deepEqual(
      p.keys.map((k) => [k.keyId, k.masked, k.status, k.served.day, k.remaining]),
      [
        [keyIdOf(keys[0]!), maskKey(keys[0]!), 'available', 1, 9],
        [keyIdOf(keys[1]!), maskKey(keys[1]!), 'available', 0, 10],
        [keyIdOf(keys[2]!), maskKey(keys[2]!), 'disabled', 0, 10],
      ],
    );
    assert.equal(p.keys[2]!.reason, 'reported invalid');
    const h = stats.pools[1]!;
    assert.equal(h.keyFile.present, false);
    assert.equal(h.total, 0);
  });

  it('stats can be narrowed to one pool, to counts only, or to keys out of rotation', async (t) => {
    const s = await startInProcess(t, { keys: { plantid: makeKeys(2) } });
    const r = await getJson(`${s.url}/api/stats?pool=plantid&keys=0`);
    assert.equal(r.body.pools.length, 1);
    assert.deepEqual(r.body.pools[0].keys, []);
    assert.equal(r.body.pools[0].total, 2);
    assert.equal((await getJson(`${s.url}/api/stats?pool=zzz`)).status, 404);
    const [a] = (await getJson(`${s.url}/api/stats`)).body.pools[0].keys;
    await postJson(`${s.url}/api/plantid/report`, { keyId: a.keyId, outcome: 'invalid' });
    const out = await getJson(`${s.url}/api/stats?keys=out`);
    assert.deepEqual(
      out.body.pools[0].keys.map((k: { keyId: string }) => k.keyId),
      [a.keyId],
    );
    assert.deepEqual(out.body.pools[1].keys, []);
  });

  it('healthz answers ok', async (t) => {
    const s = await startInProcess(t);
    assert.deepEqual(await getJson(`${s.url}/healthz`).then((r) => [r.status, r.body]), [
      200,
      { status: 'ok', auth: 'open' },
    ]);
  });
});
