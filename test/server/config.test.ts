import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadPools, loadServerConfig, parsePoolsFile } from '../../server/config.js';
import { kindwiseUpstream, upstreamUrl } from '../../server/upstream/config.js';
import { ConfigError } from '../../shared/env.js';
import { REPO_ROOT } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

describe('server environment', () => {
  it('has documented defaults', () => {
    const c = loadServerConfig({});
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.port, 5000);
    assert.equal(c.stateSaveIntervalMs, 2000);
    assert.deepEqual(c.apiTokens, []);
    assert.equal(c.open, true);
    assert.equal(c.logLevel, 'info');
    assert.match(c.keysDir, /\/keys$/u);
    assert.match(c.stateFile, /\/api_state\.json$/u);
    assert.match(c.logFile, /\/logs\/server\.log$/u);
  });

  it('names the variable in every error', () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ PORT: 'http' }, /^PORT: must be a whole number \(got "http"\)$/u],
      [{ PORT: '70000' }, /^PORT: must be at most 65535/u],
      [{ STATE_SAVE_INTERVAL_MS: '-5' }, /^STATE_SAVE_INTERVAL_MS: /u],
      [{ LOG_LEVEL: 'loud' }, /^LOG_LEVEL: must be one of error, warn, info, debug/u],
      [{ HOST: '0.0.0.0' }, /^API_TOKENS: required when HOST is not a loopback address/u],
      [{ API_TOKENS: 'short' }, /^API_TOKENS: every token must be at least 16 characters$/u],
      [
        { exec_mode: 'cluster_mode', instances: '2' },
        /^pm2 cluster mode \(instances: 2\) is not supported with the file state store/u,
      ],
      [{ exec_mode: 'cluster_mode', instances: 'max' }, /^pm2 cluster mode \(instances: max\)/u],
    ];
    for (const [env, message] of cases)
      assert.throws(
        () => loadServerConfig(env),
        (e: unknown) => e instanceof ConfigError && message.test(e.message),
        JSON.stringify(env),
      );
  });

  it('a single pm2 instance, fork or cluster, is fine', () => {
    for (const exec_mode of ['fork_mode', 'cluster_mode']) {
      const c = loadServerConfig({ exec_mode, instances: '1' });
      assert.deepEqual([c.stateBackend, c.host, c.port], ['file', '127.0.0.1', 5000]);
    }
  });

  it('any HOST is fine once tokens are set', () => {
    const c = loadServerConfig({ HOST: '0.0.0.0', API_TOKENS: 'aaaaaaaaaaaaaaaa,bbbbbbbbbbbbbbbb' });
    assert.deepEqual(c.apiTokens, ['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb']);
    assert.equal(c.open, false);
  });
});

describe('pools.json', () => {
  it('adds pools and policies on top of the built-in plantid and healthid', () => {
    const p = parsePoolsFile(
      {
        plantid: { strategy: 'fill-first', limits: { perMonth: 100 } },
        weather: { rotateEvery: 5, poolPerMinute: 60, resetTimezone: 'America/Los_Angeles', maxBackoff: 600 },
      },
      'pools.json',
    ).policies;
    assert.deepEqual([...p.keys()], ['plantid', 'healthid', 'weather']);
    assert.equal(p.get('plantid')!.strategy, 'fill-first');
    assert.deepEqual(p.get('plantid')!.limits, { perMonth: 100 });
    assert.equal(p.get('healthid')!.strategy, 'round-robin');
    const w = p.get('weather')!;
    assert.deepEqual(
      [w.rotateEvery, w.poolPerMinute, w.resetTimezone, w.maxBackoffSec, w.maxFailures],
      [5, 60, 'America/Los_Angeles', 600, 3],
    );
  });

  it('a bad entry names the file, the pool and the field', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ plantid: { strategy: 'fastest' } }, /^pools\.json: pool plantid: strategy: /u],
      [{ plantid: { rotateEvery: 0 } }, /^pools\.json: pool plantid: rotateEvery: /u],
      [{ plantid: { limits: { perDay: 1.5 } } }, /^pools\.json: pool plantid: limits\.perDay: /u],
      [{ plantid: { limits: { perYear: 3 } } }, /^pools\.json: pool plantid: limits\.perYear: unknown field$/u],
      [{ plantid: { rotateevery: 2 } }, /^pools\.json: pool plantid: rotateevery: unknown field$/u],
      [{ x: { resetTimezone: 'Mars/Olympus' } }, /^pools\.json: pool x: resetTimezone: must be an IANA time zone/u],
      [{ 'Bad Name': {} }, /^pools\.json: pool "Bad Name": name must match/u],
      [{ stats: {} }, /^pools\.json: pool "stats": name is reserved \(GET \/api\/stats is not a pool\)$/u],
      [[], /^pools\.json: must be a JSON object/u],
    ];
    for (const [raw, message] of cases)
      assert.throws(
        () => parsePoolsFile(raw, 'pools.json'),
        (e: unknown) => e instanceof ConfigError && message.test(e.message),
        JSON.stringify(raw),
      );
  });

  it('upstreams: plantid and healthid default to Kindwise, null turns one off, other pools have none unless configured', () => {
    const d = parsePoolsFile({}, 'pools.json').upstreams;
    assert.deepEqual(Object.fromEntries(d), {
      plantid: {
        type: 'kindwise',
        product: 'plant.id',
        origin: 'https://plant.id',
        apiBase: '/api/v3',
        usagePath: '/api/v3/usage_info',
      },
      healthid: {
        type: 'kindwise',
        product: 'crop.health',
        origin: 'https://crop.kindwise.com',
        apiBase: '/api/v1',
        usagePath: '/api/v1/usage_info',
      },
    });
    const u = parsePoolsFile(
      {
        plantid: { upstream: null },
        healthid: { upstream: { origin: 'http://127.0.0.1:8123' } },
        crops: {
          upstream: { type: 'kindwise', origin: 'https://crop.kindwise.com/', usagePath: '/api/v1/usage_info' },
        },
        bugs: { upstream: { type: 'kindwise', product: 'insect.id' } },
        fungi: { upstream: { product: 'mushroom.id', origin: 'http://127.0.0.1:9' } },
        weather: {},
      },
      'pools.json',
    ).upstreams;
    assert.deepEqual(Object.fromEntries(u), {
      healthid: {
        type: 'kindwise',
        product: 'crop.health',
        origin: 'http://127.0.0.1:8123',
        apiBase: '/api/v1',
        usagePath: '/api/v1/usage_info',
      },
      // The older form: usage_info's path names where the API's paths start.
      crops: {
        type: 'kindwise',
        product: 'plant.id',
        origin: 'https://crop.kindwise.com',
        apiBase: '/api/v1',
        usagePath: '/api/v1/usage_info',
      },
      bugs: {
        type: 'kindwise',
        product: 'insect.id',
        origin: 'https://insect.kindwise.com',
        apiBase: '/api/v1',
        usagePath: '/api/v1/usage_info',
      },
      fungi: {
        type: 'kindwise',
        product: 'mushroom.id',
        origin: 'http://127.0.0.1:9',
        apiBase: '/api/v1',
        usagePath: '/api/v1/usage_info',
      },
    });
  });

  it('other APIs: a key in a header (format defaults to the key alone) or a query parameter; proxyRetryPost', () => {
    const c = parsePoolsFile(
      {
        weather: {
          upstream: { type: 'header', origin: 'https://api.example', header: 'X-Api-Key' },
          proxyRetryPost: true,
        },
        search: { upstream: { type: 'query', origin: 'https://api.example:8443', param: 'key' } },
      },
      'pools.json',
    );
    assert.deepEqual(c.upstreams.get('weather'), {
      type: 'header',
      origin: 'https://api.example',
      header: 'X-Api-Key',
      format: '{key}',
    });
    assert.deepEqual(c.upstreams.get('search'), { type: 'query', origin: 'https://api.example:8443', param: 'key' });
    assert.deepEqual([...c.proxyRetryPost], ['weather']);
  });

  it('an upstream a key could leak to stops startup, naming the pool and field', () => {
    const cases: Array<[unknown, RegExp]> = [
      [
        { plantid: { upstream: { origin: 'http://plant.id' } } },
        /^pools\.json: pool plantid: upstream\.origin: must be https:\/\/ \(http:\/\/ only on a loopback host/u,
      ],
      [
        { plantid: { upstream: { origin: 'ftp://127.0.0.1' } } },
        /^pools\.json: pool plantid: upstream\.origin: must be https:\/\//u,
      ],
      [
        { plantid: { upstream: { origin: 'plant.id' } } },
        /^pools\.json: pool plantid: upstream\.origin: must be a URL/u,
      ],
      [
        { plantid: { upstream: { origin: 'https://user:pw@plant.id' } } },
        /^pools\.json: pool plantid: upstream\.origin: must be scheme, host and port only/u,
      ],
      [
        { plantid: { upstream: { origin: 'https://plant.id/api' } } },
        /^pools\.json: pool plantid: upstream\.origin: must be scheme, host and port only/u,
      ],
      [
        { plantid: { upstream: { usagePath: '//evil.example/usage' } } },
        /^pools\.json: pool plantid: upstream\.usagePath: must be a path on the origin/u,
      ],
      [{ plantid: { upstream: { type: 'openai' } } }, /^pools\.json: pool plantid: upstream\.type: /u],
      [
        { plantid: { upstream: { origin: 'https://plant.id', key: 'x' } } },
        /^pools\.json: pool plantid: upstream\.key: unknown field$/u,
      ],
      [
        { weather: { upstream: { type: 'kindwise' } } },
        /^pools\.json: pool weather: upstream\.origin: required \(no default for this pool; or name a product\)$/u,
      ],
      [
        { weather: { upstream: { product: 'tree.id' } } },
        /^pools\.json: pool weather: upstream\.product: must be one of plant\.id, crop\.health, insect\.id, mushroom\.id$/u,
      ],
      [
        { weather: { upstream: { type: 'header', origin: 'https://api.example', header: 'Bad Header' } } },
        /^pools\.json: pool weather: upstream\.header: must be an HTTP header name/u,
      ],
      [
        { weather: { upstream: { type: 'header', origin: 'https://api.example', header: 'Host' } } },
        /^pools\.json: pool weather: upstream\.header: cannot carry a key$/u,
      ],
      [
        {
          weather: {
            upstream: { type: 'header', origin: 'https://api.example', header: 'Authorization', format: 'Bearer' },
          },
        },
        /^pools\.json: pool weather: upstream\.format: must hold \{key\} once/u,
      ],
      [
        { weather: { upstream: { type: 'query', origin: 'http://api.example', param: 'key' } } },
        /^pools\.json: pool weather: upstream\.origin: must be https:\/\//u,
      ],
      [
        { weather: { upstream: { type: 'query', origin: 'https://api.example', param: 'a b' } } },
        /^pools\.json: pool weather: upstream\.param: must be a query parameter name/u,
      ],
      [{ weather: { proxyRetryPost: 'yes' } }, /^pools\.json: pool weather: proxyRetryPost: /u],
    ];
    for (const [raw, message] of cases)
      assert.throws(
        () => parsePoolsFile(raw, 'pools.json'),
        (e: unknown) => e instanceof ConfigError && message.test(e.message),
        JSON.stringify(raw),
      );
  });

  it('the one place a URL that carries a key is made keeps it on the origin', () => {
    const u = kindwiseUpstream('plant.id');
    assert.equal(upstreamUrl(u, '/api/v3/usage_info').href, 'https://plant.id/api/v3/usage_info');
    assert.equal(upstreamUrl(u, '//evil.example/x').origin, 'https://plant.id'); // a path, not a host
    assert.equal(upstreamUrl(u, '/@evil.example/x').origin, 'https://plant.id');
    for (const bad of ['https://evil.example/x', 'evil.example/x', '@evil.example/x', '.evil.example/x'])
      assert.throws(() => upstreamUrl(u, bad), /refusing to send a key off https:\/\/plant\.id/u, bad);
  });

  it('a missing pools.json gives the built-in pools; invalid JSON names the file', async (t) => {
    const dir = await tempDir(t);
    assert.deepEqual([...(await loadPools(dir)).policies.keys()], ['plantid', 'healthid']);
    await writeFile(join(dir, 'pools.json'), '{ "plantid": ');
    await assert.rejects(
      loadPools(dir),
      (e: unknown) => e instanceof ConfigError && e.message.startsWith(`${join(dir, 'pools.json')}: not valid JSON`),
    );
  });
});

describe('shipped examples', () => {
  it('keys/examples/pools.json is a valid pools.json', async () => {
    const { readFile } = await import('node:fs/promises');
    const raw: unknown = JSON.parse(await readFile(join(REPO_ROOT, 'keys', 'examples', 'pools.json'), 'utf8'));
    assert.deepEqual(
      [...parsePoolsFile(raw, 'keys/examples/pools.json').policies.keys()],
      ['plantid', 'healthid', 'weather'],
    );
  });
});
