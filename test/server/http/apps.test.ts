/**
 * Apps by name through the running server (file backend): each app's token, pools, mode and
 * stats; rotation with a grace period; removal and disabling without a restart; the audit trail;
 * usage per app against what the fake Kindwise charged; and no token anywhere it could leak.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadServerConfig } from '../../../server/config.js';
import { FakeClock } from '../../helpers/clock.js';
import { makeKeys } from '../../helpers/keys.js';
import { fakeUpstream, IDENTIFY, IMAGE } from '../../helpers/proxy.js';
import { call, startInProcess, type InProcess, type Json } from '../../helpers/server.js';
import { until } from '../../helpers/wait.js';

const API_TOKEN = 'plain-api-token-0123456789';
const ADMIN = 'admin-token-0123456789abcdef';
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const admin = (s: InProcess, method: string, path: string, json?: unknown, token = ADMIN) =>
  call(`${s.url}/admin${path}`, { method, headers: bearer(token), ...(json === undefined ? {} : { json }) });

async function server(t: Parameters<typeof startInProcess>[0], clock = new FakeClock()) {
  const fake = await fakeUpstream(t, clock);
  const plantKeys = makeKeys(2);
  for (const k of plantKeys) fake.addKey(k);
  const s = await startInProcess(t, {
    clock,
    keys: { plantid: plantKeys, healthid: makeKeys(2, 'h') },
    pools: { plantid: { upstream: { origin: fake.url } } },
    env: { API_TOKENS: API_TOKEN, ADMIN_TOKEN: ADMIN, UPSTREAM_SYNC_INTERVAL_MS: '0' },
  });
  return { s, fake, clock, keys: [...plantKeys] };
}

describe('apps by name', () => {
  it('each app its pools and mode: 403 outside its pools, a proxy-only app never sees a key, stats only with "stats"', async (t) => {
    const { s, keys } = await server(t);
    const web = await admin(s, 'POST', '/apps', { name: 'web', pools: ['plantid'], mode: 'handout' });
    assert.equal(web.status, 201);
    assert.match(web.body.token, /^kwa_[0-9a-f]+_[A-Za-z0-9_-]{43}$/u);
    assert.equal(web.headers.get('cache-control'), 'no-store');
    const mobile = await admin(s, 'POST', '/apps', { name: 'mobile', pools: ['plantid'], mode: 'proxy' });
    const webToken: string = web.body.token;
    const mobileToken: string = mobile.body.token;

    assert.equal((await call(`${s.url}/api/plantid`, { headers: bearer(webToken) })).status, 200);
    const other = await call(`${s.url}/api/healthid`, { headers: bearer(webToken) });
    assert.deepEqual([other.status, other.body.error], [403, 'forbidden_pool']);
    const viaProxy = await call(`${s.url}/proxy/plantid${IDENTIFY}`, {
      method: 'POST',
      headers: bearer(webToken),
      json: IMAGE,
    });
    assert.deepEqual([viaProxy.status, viaProxy.body.error], [403, 'proxy_not_allowed']);

    // The proxy-only app: every route that could carry a key answers without one.
    const answers = [];
    for (const path of ['/api/plantid', '/api/plantid?count=2', '/api/healthid', '/api/stats', '/metrics'])
      answers.push(await call(`${s.url}${path}`, { headers: bearer(mobileToken) }));
    answers.push(await call(`${s.url}/api/stats/history?pool=plantid`, { headers: bearer(mobileToken) }));
    answers.push(await call(`${s.url}/admin/pools/plantid/keys`, { headers: bearer(mobileToken) }));
    const proxied = await call(`${s.url}/proxy/plantid${IDENTIFY}`, {
      method: 'POST',
      headers: { 'api-key': mobileToken },
      json: IMAGE,
    });
    assert.equal(proxied.status, 201);
    answers.push(proxied);
    assert.deepEqual(
      answers.map((a) => [a.status, a.body?.error ?? null]),
      [
        [403, 'handout_not_allowed'],
        [403, 'handout_not_allowed'],
        [403, 'handout_not_allowed'],
        [403, 'stats_not_allowed'],
        [403, 'stats_not_allowed'],
        [403, 'stats_not_allowed'],
        [401, 'unauthorized'],
        [201, null],
      ],
    );
    for (const a of answers) for (const k of keys) assert.ok(!a.text.includes(k), 'a key reached the proxy-only app');

    // API_TOKENS still works as before: every pool, both modes, stats.
    assert.equal((await call(`${s.url}/api/healthid`, { headers: bearer(API_TOKEN) })).status, 200);
    assert.equal((await call(`${s.url}/api/stats`, { headers: bearer(API_TOKEN) })).status, 200);
    // An app made with stats reads them.
    const ops = await admin(s, 'POST', '/apps', { name: 'ops', stats: true, mode: 'proxy' });
    const metrics = await call(`${s.url}/metrics`, { headers: bearer(ops.body.token) });
    assert.match(metrics.text, /keywarden_app_requests_total\{app="mobile",pool="plantid",status="201"\} 1/u);
    assert.match(metrics.text, /keywarden_app_credits\{app="mobile",pool="plantid",window="day"\} 1/u);
    const stats = await call(`${s.url}/api/stats`, { headers: bearer(ops.body.token) });
    assert.deepEqual(
      stats.body.apps.map((a: Json) => [a.name, a.usage.plantid?.credits.day ?? 0]),
      [
        ['web', 1],
        ['mobile', 1],
        ['ops', 0],
      ],
    );
  });

  it('rotate with grace keeps both tokens until the grace ends; disable, expiry and removal answer 401 within a second, no restart', async (t) => {
    const { s, clock } = await server(t);
    const made = await admin(s, 'POST', '/apps', { name: 'crops', mode: 'handout' });
    const old: string = made.body.token;
    const rotated = await admin(s, 'POST', '/apps/crops/rotate', { graceSeconds: 86_400 });
    assert.equal(rotated.status, 200);
    const fresh: string = rotated.body.token;
    assert.notEqual(fresh, old);
    const status = async (token: string) => (await call(`${s.url}/api/plantid`, { headers: bearer(token) })).status;
    assert.deepEqual([await status(old), await status(fresh)], [200, 200]);
    clock.advance(86_400_000);
    assert.deepEqual([await status(old), await status(fresh)], [401, 200]);

    assert.equal((await admin(s, 'PATCH', '/apps/crops', { disabled: true })).status, 200);
    const off = await call(`${s.url}/api/plantid`, { headers: bearer(fresh) });
    assert.deepEqual([off.status, off.body.error, off.body.message], [401, 'app_disabled', 'app crops is disabled']);
    await admin(s, 'PATCH', '/apps/crops', { disabled: false, expiresAt: new Date(clock.now() - 1).toISOString() });
    assert.equal((await call(`${s.url}/api/plantid`, { headers: bearer(fresh) })).body.error, 'app_expired');
    await admin(s, 'PATCH', '/apps/crops', { expiresAt: null });
    assert.equal(await status(fresh), 200);

    // Removed by editing the file, as another instance or the offline CLI would: gone within a second.
    const file = join(s.layout.dir, 'apps.json');
    const saved = JSON.parse(await readFile(file, 'utf8'));
    await writeFile(file, JSON.stringify({ ...saved, apps: [] }));
    const removedAt = performance.now();
    await until('the removed app refused', async () => (await status(fresh)) === 401, 1000);
    assert.ok(performance.now() - removedAt < 1000);
  });

  it('usage per app equals what the upstream charged each; the audit log has every action with its actor and no secret', async (t) => {
    const { s, fake, keys } = await server(t);
    const a = await admin(s, 'POST', '/apps', { name: 'alpha', mode: 'proxy', pools: ['plantid'] });
    const boss = await admin(s, 'POST', '/apps', { name: 'boss', admin: true, pools: '*', mode: 'both' });
    const create = (token: string, app: string, json: unknown) =>
      call(`${s.url}/proxy/plantid${IDENTIFY}`, {
        method: 'POST',
        headers: { 'api-key': token, 'x-test-app': app },
        json,
      });
    for (let i = 0; i < 3; i++) await create(a.body.token, 'alpha', IMAGE);
    await create(a.body.token, 'alpha', { ...IMAGE, health: 'all' });
    await create(a.body.token, 'alpha', { images: [] }); // refused upstream: nothing charged, nothing spent
    await create(boss.body.token, 'boss', IMAGE);
    const apps = (await admin(s, 'GET', '/apps')).body.apps as Array<{ name: string; usage: Json }>;
    const credits = Object.fromEntries(apps.map((x) => [x.name, x.usage.plantid?.credits.day ?? 0]));
    assert.deepEqual(credits, { alpha: fake.chargedBy.get('alpha'), boss: fake.chargedBy.get('boss') });
    assert.equal(credits.alpha, 5);
    const alpha = (await admin(s, 'GET', '/apps/alpha')).body;
    assert.equal(alpha.usage.plantid.handouts, 5);
    assert.deepEqual(alpha.usage.plantid.outcomes, { 201: 4, 400: 1 });
    // The app's own history: what it was served and spent.
    const history = await call(`${s.url}/api/stats/history?pool=plantid&app=alpha`, { headers: bearer(API_TOKEN) });
    const sum = (xs: number[]) => xs.reduce((x, y) => x + y, 0);
    assert.deepEqual([history.body.app, sum(history.body.counts.credits)], ['alpha', 5]);

    // The admin app acts under its own name; ADMIN_TOKEN as "admin".
    const keyId = (await admin(s, 'GET', '/pools/plantid/keys', undefined, boss.body.token)).body.keys[0].keyId;
    await admin(s, 'POST', `/pools/plantid/keys/${keyId}/disable`, undefined, boss.body.token);
    await admin(s, 'POST', `/pools/plantid/keys/${keyId}/enable`);
    await admin(s, 'POST', '/apps/alpha/rotate', {});
    await admin(s, 'DELETE', '/apps/nobody');
    const audit = (await admin(s, 'GET', '/audit?limit=50')).body.entries as Array<Record<string, string>>;
    assert.deepEqual(
      audit.map((e) => [e.actor, e.action, e.target, e.result]),
      [
        ['admin', 'app.add', 'app alpha', 'ok'],
        ['admin', 'app.add', 'app boss', 'ok'],
        ['boss', 'key.disable', `plantid/${keyId}`, 'ok'],
        ['admin', 'key.enable', `plantid/${keyId}`, 'ok'],
        ['admin', 'app.rotate', 'app alpha', 'ok'],
        ['admin', 'app.remove', 'app nobody', 'unknown_app'],
      ],
    );
    assert.ok(audit.every((e) => e.ip === '127.0.0.1' || e.ip === '::ffff:127.0.0.1'));

    // No plaintext token or key in the apps file, the state, the audit log, the logs or the stats.
    await s.stop();
    const files = [
      await readFile(join(s.layout.dir, 'apps.json'), 'utf8'),
      await readFile(s.layout.stateFile, 'utf8'),
      await readFile(join(s.layout.dir, 'audit.log'), 'utf8'),
      s.lines.join('\n'),
      JSON.stringify(apps),
    ];
    for (const secret of [a.body.token, boss.body.token, ...keys])
      for (const text of files) assert.ok(!text.includes(secret), 'a token or key leaked');
  });

  it('ADMIN_TOKEN equal to an API token stops the config with one line', () => {
    assert.throws(() => loadServerConfig({ API_TOKENS: `${API_TOKEN},${ADMIN}`, ADMIN_TOKEN: ADMIN }), {
      message: 'ADMIN_TOKEN: must differ from every token in API_TOKENS',
    });
  });
});
