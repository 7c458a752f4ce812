/**
 * The real pm2 (the project's dependency) on ecosystem.config.cjs, with its own PM2_HOME,
 * killed at the end: counts survive `pm2 stop`, `pm2 restart` and `pm2 reload`; the bot app
 * runs under pm2 too, pointed at the Discord emulator.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import type { StatsResponse } from '../shared/stats.js';
import { deserializeState } from '../server/state/state-parser.js';
import { DiscordEmulator } from './helpers/discord.js';
import { makeKeys } from './helpers/keys.js';
import { getJson, makeLayout, REPO_ROOT, type Layout } from './helpers/server.js';
import { until } from './helpers/wait.js';
import { freePort } from './helpers/net.js';

const run = promisify(execFile);
const PM2 = join(REPO_ROOT, 'node_modules', 'pm2', 'bin', 'pm2');
const BOT_TOKEN = 'pm2-emulated-bot-token.x.y';

/**
 * The real pm2 with its own PM2_HOME in `layout`, the apps configured for `layout` and `port`
 * (plus `extra`), killed and removed after the test (pm2 kill must run while PM2_HOME exists).
 */
async function pm2For(t: TestContext, layout: Layout, port: number, extra: Record<string, string>) {
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: layout.dir,
    PM2_HOME: join(layout.dir, 'pm2'),
    PM2_LOG_DIR: join(layout.dir, 'pm2-logs'),
    PORT: String(port),
    KEYS_DIR: layout.keysDir,
    STATE_FILE: layout.stateFile,
    LOG_FILE: layout.logFile,
    STATS_API: `http://127.0.0.1:${port}/api/stats`,
    BOT_LOG_FILE: join(layout.dir, 'logs', 'bot.log'),
    ...extra,
  };
  const pm2 = (...args: string[]) => run(process.execPath, [PM2, ...args], { cwd: REPO_ROOT, env, timeout: 60_000 });
  t.after(async () => {
    await pm2('kill').catch(() => {});
    await rm(layout.dir, { recursive: true, force: true });
  });
  return pm2;
}

describe('pm2 with ecosystem.config.cjs', { concurrency: true }, () => {
  it('runs server and bot; handout counts survive stop, restart and reload', async (t) => {
    const emu = new DiscordEmulator(BOT_TOKEN);
    await emu.start();
    t.after(() => emu.stop());
    // Own cleanup order: pm2 kill must run while PM2_HOME still exists (t.after hooks run in order).
    const layout = await makeLayout(t, { plantid: makeKeys(4), healthid: makeKeys(2) }, undefined, { keep: true });
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const pm2 = await pm2For(t, layout, port, {
      STATE_SAVE_INTERVAL_MS: '600000', // only shutdown saves, so the test proves them
      DISCORD_BOT_TOKEN: BOT_TOKEN,
      DISCORD_API_URL: emu.apiUrl,
      STATS_POLL_INTERVAL_MS: '500',
    });

    await pm2('start', 'ecosystem.config.cjs'); // wait_ready: returns once the server said ready
    const served = async (n: number) => {
      for (let i = 0; i < n; i++) assert.equal((await getJson(`${url}/api/plantid`)).status, 200);
    };
    const total = async () =>
      ((await getJson(`${url}/api/stats`)).body as StatsResponse).pools[0]!.keys.reduce(
        (s, k) => s + k.served.total,
        0,
      );
    await served(7);

    // The bot under pm2 reaches the emulator and shows the server's counts.
    const presence = await emu.waitFor(
      'presence',
      emu.presences,
      (p) => p.activities?.[0]?.state === 'plantid 4/4 · healthid 2/2',
      30_000,
    );
    assert.equal(presence.status, 'online');

    await pm2('stop', 'keywarden-server');
    const { state } = deserializeState(await readFile(layout.stateFile, 'utf8'));
    assert.equal(
      Object.values(state.pools.plantid!.keys).reduce((s, k) => s + k.total, 0),
      7,
    );

    await pm2('restart', 'keywarden-server');
    await until('server back', async () => (await getJson(`${url}/healthz`)).status === 200);
    assert.equal(await total(), 7);
    await served(5);

    const reload = await pm2('reload', 'keywarden-server');
    assert.doesNotMatch(`${reload.stdout}${reload.stderr}`, /error|pid/iu);
    await until('server reloaded', async () => (await getJson(`${url}/healthz`)).status === 200);
    assert.equal(await total(), 12);

    const list = JSON.parse((await pm2('jlist')).stdout) as Array<{
      name: string;
      pm2_env: { status: string; restart_time: number };
    }>;
    assert.deepEqual(list.map((p) => [p.name, p.pm2_env.status]).sort(), [
      ['keywarden-bot', 'online'],
      ['keywarden-server', 'online'],
    ]);
    const serverLog = await readFile(join(layout.dir, 'pm2-logs', 'keywarden-server.out.log'), 'utf8');
    // The apps start from bin/*.mjs: pm2 does not go looking for ts-node.
    for (const f of ['keywarden-server.err.log', 'keywarden-bot.err.log'])
      assert.equal(await readFile(join(layout.dir, 'pm2-logs', f), 'utf8').catch(() => ''), '', f);
    assert.equal(serverLog.match(/state saved; bye/gu)?.length, 2); // stop and reload stopped a running server; restart started a stopped one
  });

  it('a configuration error (no DISCORD_BOT_TOKEN) stops the bot instead of restarting it forever; the server runs on and reloads cleanly', async (t) => {
    const layout = await makeLayout(t, { plantid: makeKeys(2) }, undefined, { keep: true });
    const port = await freePort();
    const pm2 = await pm2For(t, layout, port, {}); // no DISCORD_BOT_TOKEN
    await pm2('start', 'ecosystem.config.cjs').catch(() => {}); // pm2 may report the bot's failed start
    type Env = { status: string; restart_time: number; exit_code?: number };
    const apps = async () =>
      Object.fromEntries(
        (JSON.parse((await pm2('jlist')).stdout) as Array<{ name: string; pid: number; pm2_env: Env }>).map((p) => [
          p.name,
          { ...p.pm2_env, pid: p.pid },
        ]),
      );
    await until('the bot to exit 78', async () => (await apps())['keywarden-bot']?.exit_code === 78);
    // pm2 decides at the exit, in the same step that records the exit code (God.handleExit): an app
    // it will not restart gets pid 0 there, one it will restart keeps its old pid until the restart.
    // (Its status reads "waiting restart" either way, when the app has a restart back-off.)
    const after = await apps();
    assert.equal(after['keywarden-bot']!.pid, 0);
    assert.equal(after['keywarden-bot']!.restart_time, 0);
    assert.notEqual(after['keywarden-bot']!.status, 'online');
    assert.equal(after['keywarden-server']!.status, 'online');
    const botErr = await readFile(join(layout.dir, 'pm2-logs', 'keywarden-bot.err.log'), 'utf8');
    assert.equal(
      botErr,
      'keywarden-bot: DISCORD_BOT_TOKEN: is required: the bot token from the Discord developer portal\n',
    );
    const reload = await pm2('reload', 'keywarden-server');
    assert.doesNotMatch(`${reload.stdout}${reload.stderr}`, /error|pid/iu);
    await until('server reloaded', async () => (await getJson(`http://127.0.0.1:${port}/healthz`)).status === 200);
  });
});
