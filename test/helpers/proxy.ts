/**
 * What the proxy tests share: a caller token, a fake Kindwise for the test's life, a server whose
 * plantid pool proxies to it, and that pool's stats.
 */
import type { TestContext } from 'node:test';
import type { PoolStats, StatsResponse } from '../../shared/stats.js';
import type { FakeClock } from './clock.js';
import { FakeKindwise } from './kindwise.js';
import { getJson, startInProcess } from './server.js';

export const TOKEN = 'proxy-caller-token-0123456789';
export const IDENTIFY = '/api/v3/identification';
export const IMAGE = { images: ['data:image/jpeg;base64,AAAA'] };

/** A fake Kindwise on 127.0.0.1, stopped after the test. */
export async function fakeUpstream(t: TestContext, clock?: FakeClock): Promise<FakeKindwise> {
  const fake = new FakeKindwise(clock?.now);
  await fake.start();
  t.after(() => fake.stop());
  return fake;
}

/** A server with `keys` in plantid, proxied to `fake`, with API_TOKENS set and no sync unless `env` says so. */
export function proxyServer(
  t: TestContext,
  fake: FakeKindwise,
  keys: string[],
  env: Record<string, string> = {},
  pool: Record<string, unknown> = {},
  clock?: FakeClock,
) {
  return startInProcess(t, {
    clock,
    keys: { plantid: keys },
    pools: { plantid: { upstream: { origin: fake.url }, ...pool } },
    env: { API_TOKENS: TOKEN, UPSTREAM_SYNC_INTERVAL_MS: '0', ...env },
  });
}

/** The plantid pool's stats. */
export async function plantid(url: string): Promise<PoolStats> {
  return (
    (await getJson(`${url}/api/stats?pool=plantid`, { headers: { authorization: `Bearer ${TOKEN}` } }))
      .body as StatsResponse
  ).pools[0]!;
}
