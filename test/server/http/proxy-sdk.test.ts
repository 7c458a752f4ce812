/**
 * The official Kindwise Python SDK (vendored in ../shared/vendor/kindwise-api-client) pointed at
 * Keywarden's proxy, as a Kindwise user would: identify → retrieve → feedback → ask → get the
 * conversation → delete it → delete the identification, under round-robin, against the fake
 * Kindwise that keeps an identification to the key that made it. Run from the venv `.ci/run`
 * makes (.venv-sdk), or KINDWISE_SDK_PYTHON; called asynchronously, since the fake serves from
 * this process.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { keyIdOf } from '../../../shared/keys.js';
import type { PoolStats, StatsResponse } from '../../../shared/stats.js';
import { FakeKindwise } from '../../helpers/kindwise.js';
import { makeKeys } from '../../helpers/keys.js';
import { getJson, REPO_ROOT, startInProcess } from '../../helpers/server.js';

const run = promisify(execFile);
const TOKEN = 'sdk-caller-token-0123456789';
const ADMIN = 'admin-token-0123456789abcdef';
const SDK_DIR = join(REPO_ROOT, '..', 'shared', 'vendor', 'kindwise-api-client');
const PYTHON = process.env.KINDWISE_SDK_PYTHON ?? join(REPO_ROOT, '.venv-sdk', 'bin', 'python');
const SCRIPT = join(REPO_ROOT, 'test', 'sdk', 'kindwise_flow.py');
const missing = !existsSync(PYTHON)
  ? `no Python with the SDK's dependencies at ${PYTHON} (.ci/run makes it)`
  : !existsSync(SDK_DIR)
    ? `no vendored SDK at ${SDK_DIR}`
    : null;

interface Step {
  step?: string;
  token?: string;
  error?: string;
}

/** Runs the SDK script; its steps, or a failure naming what the SDK said. */
async function sdk(host: string, ...args: string[]): Promise<Step[]> {
  try {
    const { stdout } = await run(PYTHON, [SCRIPT, SDK_DIR, host, TOKEN, ...args], { timeout: 60_000 });
    return stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Step);
  } catch (err) {
    const { stdout = '', stderr = '' } = err as { stdout?: string; stderr?: string };
    const said =
      stdout.trim().split('\n').at(-1) || stderr.trim().split('\n').slice(-3).join(' / ') || (err as Error).message;
    throw new Error(`the SDK failed: ${said}`, { cause: err });
  }
}

const FOLLOW_UPS = ['retrieve', 'feedback', 'ask', 'conversation', 'delete_conversation', 'delete'];

async function setup(t: TestContext) {
  const fake = new FakeKindwise();
  await fake.start();
  t.after(() => fake.stop());
  const keys = makeKeys(3);
  for (const k of keys) fake.addKey(k, { limits: { day: 100 } });
  const s = await startInProcess(t, {
    keys: { plantid: keys },
    pools: { plantid: { strategy: 'round-robin', upstream: { origin: fake.url } } },
    env: { API_TOKENS: TOKEN, ADMIN_TOKEN: ADMIN, UPSTREAM_SYNC_INTERVAL_MS: '0' },
  });
  const host = `${s.url}/proxy/plantid`;
  const stats = async (): Promise<PoolStats> =>
    (
      (await getJson(`${s.url}/api/stats?pool=plantid`, { headers: { authorization: `Bearer ${TOKEN}` } }))
        .body as StatsResponse
    ).pools[0]!;
  /** Asks Kindwise (the fake) about every key now, as `keys check` does. */
  const check = async () =>
    assert.equal(
      (
        await fetch(`${s.url}/admin/pools/plantid/check`, {
          method: 'POST',
          headers: { authorization: `Bearer ${ADMIN}` },
        })
      ).status,
      200,
    );
  return { fake, keys, host, stats, check };
}

/** Which key made an identification, as the fake saw it. */
function creatorOf(fake: FakeKindwise, token: string, keys: string[]): string {
  const follow = fake.requests.find((r) => r.path === `/api/v3/identification/${token}` && r.method === 'GET');
  return keys.find((k) => k === follow?.apiKey) ?? '';
}

describe(
  'the Kindwise Python SDK through the proxy',
  { skip: missing !== null && process.env.CI !== 'true' ? missing! : false },
  () => {
    it('three rounds of the whole flow under round-robin, each on the key that made it; served equals credits charged', async (t) => {
      const { fake, keys, host, stats } = await setup(t);
      const steps = await sdk(host, 'full', '3');
      assert.deepEqual(
        steps.map((s) => s.step),
        [0, 1, 2].flatMap(() => ['identify', ...FOLLOW_UPS]),
      );
      // Each round's identification was made by the next key in turn, and every follow-up reached that key.
      const tokens = steps.filter((s) => s.step === 'identify').map((s) => s.token!);
      assert.deepEqual(
        tokens.map((tok) => creatorOf(fake, tok, keys)),
        keys,
      );
      for (const tok of tokens) {
        const calls = fake.requests.filter((r) => r.path.startsWith(`/api/v3/identification/${tok}`));
        assert.equal(calls.length, FOLLOW_UPS.length);
        assert.ok(calls.every((r) => r.apiKey === creatorOf(fake, tok, keys)));
      }
      const p = await stats();
      assert.equal(
        p.keys.reduce((n, k) => n + k.served.total, 0),
        fake.charged,
      );
      assert.deepEqual([p.proxy.creditsSpent, p.proxy.free, p.proxy.failovers], [3, 18, 0]);
    });

    it('after a failover, after the creating key ran out of credits, and after it came back', async (t) => {
      const { fake, keys, host, stats, check } = await setup(t);
      // A failover: the first key in turn is dead; the SDK sees nothing of it.
      fake.setActive(keys[0]!, false);
      const afterFailover = await sdk(host, 'full', '1');
      assert.deepEqual(
        afterFailover.map((s) => s.step),
        ['identify', ...FOLLOW_UPS],
      );
      assert.ok((await stats()).proxy.failovers >= 1);
      fake.setActive(keys[0]!, true);

      // The creating key runs out of credits between the identification and its follow-ups: they are free, and go to it.
      const [made] = await sdk(host, 'create');
      // The last create the fake answered is this one.
      const creator = fake.requests
        .filter((r) => r.method === 'POST' && r.path === '/api/v3/identification')
        .at(-1)!.apiKey!;
      fake.setUsed(creator, 'day', 100);
      await check();
      assert.equal((await stats()).keys.find((k) => k.keyId === keyIdOf(creator))!.status, 'exhausted');
      assert.deepEqual(
        (await sdk(host, 'follow', made!.token!)).map((s) => s.step),
        FOLLOW_UPS,
      );
      // New identifications go to the others meanwhile, and work whole.
      assert.deepEqual(
        (await sdk(host, 'full', '2')).map((s) => s.step),
        [0, 1].flatMap(() => ['identify', ...FOLLOW_UPS]),
      );

      // It comes back (a new day's credits, seen by a check): the flow works on it again.
      fake.setUsed(creator, 'day', 0);
      await check();
      assert.ok((await stats()).keys.every((k) => k.status === 'available'));
      assert.deepEqual(
        (await sdk(host, 'full', '3')).map((s) => s.step),
        [0, 1, 2].flatMap(() => ['identify', ...FOLLOW_UPS]),
      );
      const p = await stats();
      assert.equal(
        p.keys.reduce((n, k) => n + k.served.total, 0),
        fake.charged,
      );
    });
  },
);
