/**
 * The Redis backend at start-up, with the real server process: a Redis that would forget every
 * count on restart is refused (unless REDIS_ALLOW_VOLATILE), and moving from the file backend to
 * Redis brings the state file's counts, blocks and disabled keys along.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { StatsResponse } from '../../../shared/stats.js';
import { makeKeys } from '../../helpers/keys.js';
import { REDIS_MISSING, redisServerBinary, TestRedis } from '../../helpers/redis.js';
import { runCli } from '../../helpers/cli.js';
import { getJson, makeLayout, postJson, runServerProcess, spawnServer, type Layout } from '../../helpers/server.js';

const ADMIN = 'redis-move-admin-token-0123456789';

/** The keys CLI in this process, configured for the file backend, with no server answering it. */
const cli = (layout: Layout, args: string[]) => runCli(layout, args);

const available = redisServerBinary() !== null;
if (!available && process.env.CI) throw new Error(REDIS_MISSING);

describe('Redis backend at start-up', { skip: available ? false : REDIS_MISSING }, () => {
  const volatile = new TestRedis({ volatile: true });
  const durable = new TestRedis();
  before(async () => {
    await volatile.start();
    await durable.start();
  });
  after(async () => {
    await volatile.destroy();
    await durable.destroy();
  });

  it('refuses a Redis without persistence, naming REDIS_URL, unless REDIS_ALLOW_VOLATILE=true', async (t) => {
    const layout = await makeLayout(t, { plantid: makeKeys(1) });
    const env = { STATE_BACKEND: 'redis', REDIS_URL: volatile.url };
    const refused = runServerProcess(layout, env);
    assert.equal(await refused.exited, 78);
    assert.equal(refused.output().trim().split('\n').length, 1);
    assert.match(
      refused.output(),
      new RegExp(
        `^keywarden: REDIS_URL: ${volatile.url.replaceAll('/', '\\/')} keeps no append-only file and no snapshots .* set REDIS_ALLOW_VOLATILE=true\\n$`,
        'u',
      ),
    );
    const allowed = await spawnServer(t, layout, { ...env, REDIS_ALLOW_VOLATILE: 'true' });
    assert.match(allowed.output(), /WARN.*Redis keeps no append-only file and no snapshots/u);
    assert.equal((await getJson(`${allowed.url}/api/plantid`)).status, 200);
  });

  it('moving STATE_BACKEND from file to Redis keeps counts and a disabled key', async (t) => {
    const keys = makeKeys(3);
    const layout = await makeLayout(t, { plantid: keys }, { plantid: { limits: { total: 50 } } });
    const file = await spawnServer(t, layout, { ADMIN_TOKEN: ADMIN });
    for (let i = 0; i < 7; i++) await getJson(`${file.url}/api/plantid`);
    const before = (await getJson(`${file.url}/api/stats`)).body as StatsResponse;
    const victim = before.pools[0]!.keys[1]!.keyId;
    assert.equal(
      (
        await postJson(`${file.url}/admin/pools/plantid/keys/${victim}/disable`, '', {
          authorization: `Bearer ${ADMIN}`,
        })
      ).status,
      204,
    );
    assert.equal(await file.kill('SIGTERM'), 0);

    const env = { STATE_BACKEND: 'redis', REDIS_URL: durable.url, REDIS_PREFIX: 'kw-move:' };
    const redis = await spawnServer(t, layout, env);
    assert.match(redis.output(), /pool plantid: Redis held nothing; imported 3 keys' state from file /u);
    const st = ((await getJson(`${redis.url}/api/stats`)).body as StatsResponse).pools[0]!;
    assert.deepEqual(
      st.keys.map((k) => k.served.total),
      before.pools[0]!.keys.map((k) => k.served.total),
    );
    assert.equal(st.keys.find((k) => k.keyId === victim)!.status, 'disabled');
    for (let i = 0; i < 4; i++) assert.notEqual((await getJson(`${redis.url}/api/plantid`)).body.keyId, victim);
    assert.equal(await redis.kill('SIGTERM'), 0);

    // The state file stays as it was, marked: the CLI, configured for the file backend and with no
    // server answering it, refuses to edit a file the server no longer reads.
    const offline = await cli(layout, ['enable', 'plantid', victim]);
    assert.equal(offline.code, 1);
    assert.match(
      offline.stderr,
      new RegExp(
        `^keywarden-keys: STATE_FILE ${layout.stateFile} was moved to Redis \\(${durable.url.replaceAll('/', '\\/')}, prefix kw-move:\\) on .*; the server uses that now, so edit through it`,
        'u',
      ),
    );

    // A second start does not import again over what Redis now holds.
    const again = await spawnServer(t, layout, env);
    assert.doesNotMatch(again.output(), /imported/u);
    const total = ((await getJson(`${again.url}/api/stats`)).body as StatsResponse).pools[0]!.keys.reduce(
      (n, k) => n + k.served.total,
      0,
    );
    assert.equal(total, 7 + 4);
    assert.equal(await again.kill('SIGTERM'), 0);

    // Back to the file backend: it warns that the file is as of the move, and the file is in use again.
    const back = await spawnServer(t, layout);
    assert.match(
      back.output(),
      /WARN.*state: file .* was moved to Redis .* it holds the state as of then; to bring Redis's back, run npm run keys -- state export there and state import here/u,
    );
    assert.equal(await back.kill('SIGTERM'), 0);
    assert.equal((await cli(layout, ['enable', 'plantid', victim])).code, 0);
  });
});
