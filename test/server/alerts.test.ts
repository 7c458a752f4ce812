/**
 * The alert engine through the running server: a key the fake Kindwise turns invalid is one
 * webhook POST to a receiver on loopback, its recovery one more; two instances on one Redis send
 * each event once; a receiver that is down holds up nothing and gets the event when it is back.
 * And the bodies Slack's and Discord's webhooks take.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it, type TestContext } from 'node:test';
import { parseWebhooks, webhookBody, type AlertEvent } from '../../server/alerts/webhooks.js';
import { makeKeys } from '../helpers/keys.js';
import { fakeUpstream } from '../helpers/proxy.js';
import { REDIS_SKIP, TestRedis, redisBackendOn } from '../helpers/redis.js';
import { call, makeLayout, startInProcess } from '../helpers/server.js';
import { until } from '../helpers/wait.js';

const ADMIN = 'admin-token-0123456789abcdef';
const TOKEN = 'api-token-0123456789abcdef';

/** A webhook receiver on loopback: what it was sent, in order. */
async function receiver(t: TestContext, port = 0): Promise<{ url: string; got: unknown[]; server: Server }> {
  const got: unknown[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString('utf8')));
    req.on('end', () => {
      got.push(JSON.parse(body));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, got, server };
}

const events = (got: unknown[]) => got.map((e) => (e as AlertEvent).event);
const check = (url: string) =>
  call(`${url}/admin/pools/plantid/check`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });

async function setup(t: TestContext, hookUrl: string) {
  const fake = await fakeUpstream(t);
  const keys = makeKeys(3);
  for (const k of keys) fake.addKey(k);
  const layout = await makeLayout(t, { plantid: keys }, { plantid: { upstream: { origin: fake.url } } });
  const env = {
    API_TOKENS: TOKEN,
    ADMIN_TOKEN: ADMIN,
    UPSTREAM_SYNC_INTERVAL_MS: '0',
    ALERT_WEBHOOKS: hookUrl,
    ALERT_CHECK_INTERVAL_MS: '200',
  };
  return { fake, keys, layout, env };
}

describe('alerts', () => {
  it('a key turned invalid upstream: one POST, and one for its recovery; /api/alerts lists it meanwhile', async (t) => {
    const hook = await receiver(t);
    const { fake, keys, layout, env } = await setup(t, hook.url);
    const s = await startInProcess(t, { layout, env });
    await check(s.url);
    fake.setActive(keys[1]!, false);
    await check(s.url);
    await until('the invalid key alert', async () => hook.got.length >= 1);
    const listed = await call(`${s.url}/api/alerts`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.deepEqual(
      listed.body.alerts.map((a: { event: string }) => a.event),
      ['key_invalid'],
    );
    await new Promise((r) => setTimeout(r, 600)); // three more checks: nothing new
    fake.setActive(keys[1]!, true);
    await check(s.url);
    await until('the recovery', async () => hook.got.length >= 2);
    await new Promise((r) => setTimeout(r, 600));
    assert.deepEqual(events(hook.got), ['key_invalid', 'key_invalid.resolved']);
    const first = hook.got[0] as AlertEvent;
    assert.equal(first.severity, 'warning');
    assert.equal(first.pool, 'plantid');
    assert.match(first.message, /^key \S+ \([0-9a-f]{12}\) of pool plantid is invalid: upstream: /u);
    for (const e of hook.got) for (const k of keys) assert.ok(!JSON.stringify(e).includes(k), 'a key in a webhook');
  });

  it('a receiver that is down holds up no request, and gets the event once it is back', async (t) => {
    const hook = await receiver(t);
    const port = Number(new URL(hook.url).port);
    await new Promise<void>((resolve) => hook.server.close(() => resolve()));
    const { fake, keys, layout, env } = await setup(t, hook.url);
    const s = await startInProcess(t, { layout, env });
    fake.setActive(keys[0]!, false);
    await check(s.url);
    await new Promise((r) => setTimeout(r, 500)); // the engine has tried, and failed
    const started = performance.now();
    for (let i = 0; i < 20; i++)
      assert.equal((await call(`${s.url}/api/plantid`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200);
    assert.ok(performance.now() - started < 2000, 'handouts waited on the webhook');
    const back = await receiver(t, port);
    await until('the event after the receiver is back', async () => back.got.length >= 1, 10_000);
    assert.deepEqual(events(back.got), ['key_invalid']);
  });

  it("Slack's and Discord's webhook bodies, by host or ?format=", () => {
    const [slack, discord, json, forced] = parseWebhooks([
      'https://hooks.slack.com/services/T0/B0/XYZ',
      'https://discord.com/api/webhooks/123/abc',
      'https://alerts.example.com/in',
      'https://alerts.example.com/in?format=discord&x=1',
    ]);
    assert.deepEqual(
      [slack!.format, discord!.format, json!.format, forced!.format, forced!.url],
      ['slack', 'discord', 'json', 'discord', 'https://alerts.example.com/in?x=1'],
    );
    assert.throws(() => parseWebhooks(['http://alerts.example.com/in']), /must be https \(http only on loopback\)/u);
    const e: AlertEvent = {
      event: 'pool_low',
      severity: 'critical',
      pool: 'plantid',
      message: 'pool plantid has 0 of 3 keys usable',
      at: '2026-12-04T10:00:00.000Z',
      dashboardUrl: 'https://keys.example.com/dashboard',
    };
    // Slack incoming webhooks: `text` (required as the fallback), optional Block Kit `blocks`.
    const s = webhookBody('slack', e) as { text: string; blocks: Array<{ type: string }> };
    assert.match(s.text, /pool_low: pool plantid has 0 of 3 keys usable/u);
    assert.deepEqual(
      s.blocks.map((b) => b.type),
      ['section', 'context'],
    );
    // Discord execute-webhook: `content` or `embeds` (title, description, color, timestamp ISO, url).
    const d = webhookBody('discord', e) as { embeds: Array<Record<string, unknown>> };
    assert.deepEqual(Object.keys(d).sort(), ['allowed_mentions', 'embeds', 'username']);
    assert.deepEqual(d.embeds[0], {
      title: 'pool_low',
      description: 'pool plantid has 0 of 3 keys usable',
      color: 0xe74c3c,
      timestamp: '2026-12-04T10:00:00.000Z',
      url: 'https://keys.example.com/dashboard',
      footer: { text: 'pool plantid' },
    });
    assert.deepEqual(webhookBody('json', e), e);
  });
});

describe('alerts on Redis', { skip: REDIS_SKIP }, () => {
  const redis = new TestRedis();
  before(() => redis.start());
  after(() => redis.destroy());

  it('two instances on one Redis send each event once', async (t) => {
    const hook = await receiver(t);
    const { fake, keys, layout, env } = await setup(t, hook.url);
    const redisEnv = { ...env, STATE_BACKEND: 'redis' };
    const backend = redisBackendOn(redis, 'kwalerts:');
    const one = await startInProcess(t, { layout, env: redisEnv, backend });
    const two = await startInProcess(t, { layout, env: redisEnv, backend });
    fake.setActive(keys[2]!, false);
    await check(one.url);
    await until('the invalid key alert', async () => hook.got.length >= 1);
    fake.setActive(keys[2]!, true);
    await check(two.url);
    await until('the recovery', async () => hook.got.length >= 2);
    await new Promise((r) => setTimeout(r, 1000)); // every instance has looked again, more than once
    assert.deepEqual(events(hook.got), ['key_invalid', 'key_invalid.resolved']);
  });
});
