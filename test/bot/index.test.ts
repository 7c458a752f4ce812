/**
 * End to end: the real bot process (bot/index.ts, real discord.js) against the Discord emulator,
 * watching a real key server process with temp key files. Everything on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { APIEmbed } from 'discord.js';
import { describe, it, type TestContext } from 'node:test';
import { statsEmbeds } from '../../bot/embeds.js';
import type { StatsResponse } from '../../shared/stats.js';
import { ALERT_CHANNEL_ID, DiscordEmulator, TEXT_CHANNEL_ID } from '../helpers/discord.js';
import { makeKeys } from '../helpers/keys.js';
import { keyIdOf, maskKey } from '../../shared/keys.js';
import { FakeKindwise } from '../helpers/kindwise.js';
import { entryArgs, getJson, makeLayout, spawnServer, startInProcess } from '../helpers/server.js';
import { until } from '../helpers/wait.js';

const TOKEN = 'emulated-bot-token.abc.def';
const withoutTimestamps = (embeds: APIEmbed[]) => embeds.map(({ timestamp: _t, ...rest }) => rest);

/** GET /api/stats requests answered 200, from the server's request histogram. */
function statsRequests(metricsText: string): number {
  return Number(
    /^keywarden_http_request_duration_seconds_count\{method="GET",route="\/api\/stats",status="200"\} (\d+)$/mu.exec(
      metricsText,
    )?.[1] ?? 0,
  );
}

/** The real bot process against the emulator, alerting to ALERT_CHANNEL_ID; killed after the test if still running. */
function spawnBot(t: TestContext, dir: string, emu: DiscordEmulator, env: Record<string, string>) {
  const bot = spawn(process.execPath, entryArgs('bot/index.ts'), {
    cwd: dir,
    env: {
      PATH: process.env.PATH ?? '',
      DISCORD_BOT_TOKEN: TOKEN,
      DISCORD_API_URL: emu.apiUrl,
      ALERT_CHANNEL_ID,
      BOT_LOG_FILE: join(dir, 'logs', 'bot.log'),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  bot.stdout.on('data', (d: Buffer) => (out += d.toString()));
  bot.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => bot.once('exit', (code) => resolve(code)));
  t.after(() => {
    if (bot.exitCode === null) bot.kill('SIGKILL');
  });
  return { bot, output: () => out, exited };
}

describe('Discord bot end to end', () => {
  it('presence, !stats, /stats, one alert per change, and the server going away and back', async (t) => {
    const emu = new DiscordEmulator(TOKEN);
    await emu.start();
    t.after(() => emu.stop());

    const layout = await makeLayout(t, { plantid: makeKeys(3), healthid: makeKeys(2) });
    // The server's alert engine looks every 200 ms (the bot posts what it finds).
    const alerting = { ALERT_CHECK_INTERVAL_MS: '200' };
    let server = await spawnServer(t, layout, alerting);
    const port = new URL(server.url).port;
    await getJson(`${server.url}/api/plantid`); // a current key to show

    const {
      bot,
      output,
      exited: botExit,
    } = spawnBot(t, layout.dir, emu, {
      STATS_API: `${server.url}/api/stats`,
      STATS_POLL_INTERVAL_MS: '400',
      STATS_TIMEOUT_MS: '2000',
      LOW_KEYS_THRESHOLD: '1',
    });

    // Identified with the intents the prefix command needs; presence shows the counts.
    const online = await emu
      .waitFor('presence', emu.presences, (p) => p.status === 'online' && p.activities.length > 0)
      .catch((e: Error) => {
        throw new Error(`${e.message}\nbot output:\n${output()}`);
      });
    assert.equal(emu.identifies[0]!.intents & (1 | 512 | 32768), 1 | 512 | 32768);
    assert.deepEqual(online.activities, [{ type: 4, name: 'Custom Status', state: 'plantid 3/3 · healthid 2/2' }]);

    // !stats → an embed reply whose fields match the server's stats.
    emu.userMessage('!stats');
    const reply = await emu.waitFor('message', emu.messages, (m) => m.channelId === TEXT_CHANNEL_ID);
    const live = (await getJson(`${server.url}/api/stats?keys=all`)).body as StatsResponse;
    assert.deepEqual(withoutTimestamps(reply.body.embeds), withoutTimestamps(statsEmbeds(live, 1)));
    assert.equal(reply.body.embeds.length, 2);
    assert.equal(reply.body.embeds[0]!.description, '**3/3** keys available · round-robin');
    assert.equal(
      reply.body.embeds[0]!.fields![0]!.value,
      `\`${live.pools[0]!.current!.masked}\` (${live.pools[0]!.current!.keyId}) · 0 requests before rotation`,
    );
    assert.ok(reply.body.message_reference, 'answers as a reply');

    // /stats → an interaction response with the same embeds.
    await emu.waitFor('commands', emu.commands, (c) => c.name === 'stats');
    emu.slashCommand('stats');
    const ir = await emu.waitFor('interactionResponse', emu.interactionResponses, () => true);
    const slashEmbeds =
      ir.body.type === 4
        ? ir.body.data!.embeds
        : (await emu.waitFor('interactionResponse', emu.interactionResponses, (r) => r.interactionId === 'followup'))
            .body.embeds;
    assert.deepEqual(withoutTimestamps(slashEmbeds), withoutTimestamps(reply.body.embeds));

    // Emptying a key file → exactly one alert, however many polls follow.
    assert.equal(emu.messages.filter((m) => m.channelId === ALERT_CHANNEL_ID).length, 0);
    await writeFile(join(layout.keysDir, 'plantid.txt'), '# all keys revoked\n');
    const alert = await emu.waitFor('message', emu.messages, (m) => m.channelId === ALERT_CHANNEL_ID);
    assert.equal(alert.body.embeds[0]!.title, 'Pool plantid has no usable key');
    const idle = await emu.waitFor('presence', emu.presences, (p) => p.status === 'idle');
    assert.equal(idle.activities[0]!.state, 'plantid 0/0 · healthid 2/2');
    // Three more polls of the server (it counts the bot's GET /api/stats), and still one alert.
    const polls = async () => statsRequests(await (await fetch(`${server.url}/metrics`)).text());
    const seen = await polls();
    await until('three more polls', async () => (await polls()) >= seen + 3);
    assert.equal(emu.messages.filter((m) => m.channelId === ALERT_CHANNEL_ID).length, 1);

    // Key server stops → dnd and the red embed, one "down" alert.
    assert.equal(await server.kill('SIGTERM'), 0);
    const dnd = await emu.waitFor('presence', emu.presences, (p) => p.status === 'dnd');
    assert.equal(dnd.activities[0]!.state, 'Key server unreachable');
    const before = emu.messages.length;
    emu.userMessage('!stats');
    const red = await emu.waitFor('message', emu.messages.slice(before), (m) => m.channelId === TEXT_CHANNEL_ID);
    assert.equal(red.body.embeds[0]!.title, 'Key server unreachable');
    assert.equal(red.body.embeds[0]!.color, 0xe74c3c);
    assert.match(red.body.embeds[0]!.description ?? '', /Last seen <t:\d+:R>/u);
    await emu.waitFor(
      'message',
      emu.messages,
      (m) => m.channelId === ALERT_CHANNEL_ID && m.body.embeds[0]!.title === 'Key server is down',
    );

    // Restart on the same port → presence recovers, "back" alert, !stats shows pools again.
    await writeFile(join(layout.keysDir, 'plantid.txt'), makeKeys(2).join('\n'));
    server = await spawnServer(t, layout, { ...alerting, PORT: port });
    const back = await emu.waitFor(
      'presence',
      emu.presences.slice(emu.presences.indexOf(dnd) + 1),
      (p) => p.status !== 'dnd',
    );
    assert.deepEqual([back.status, back.activities[0]!.state], ['online', 'plantid 2/2 · healthid 2/2']);
    await emu.waitFor(
      'message',
      emu.messages,
      (m) => m.channelId === ALERT_CHANNEL_ID && m.body.embeds[0]!.title === 'Key server is back',
    );
    await emu.waitFor(
      'message',
      emu.messages,
      (m) => m.channelId === ALERT_CHANNEL_ID && m.body.embeds[0]!.title === 'Pool plantid recovered',
    );
    const afterBack = emu.messages.length;
    emu.userMessage('!stats');
    const green = await emu.waitFor('message', emu.messages.slice(afterBack), (m) => m.channelId === TEXT_CHANNEL_ID);
    assert.equal(green.body.embeds[0]!.description, '**2/2** keys available · round-robin');
    const alertTitles = emu.messages
      .filter((m) => m.channelId === ALERT_CHANNEL_ID)
      .map((m) => m.body.embeds[0]!.title);
    assert.deepEqual(alertTitles, [
      'Pool plantid has no usable key',
      'Key server is down',
      'Key server is back',
      'Pool plantid recovered',
    ]);

    // Graceful stop; the token never reached the logs.
    bot.kill('SIGTERM');
    assert.equal(await botExit, 0);
    assert.ok(!output().includes(TOKEN), 'bot output contains the token');
    const { readFile } = await import('node:fs/promises');
    assert.ok(
      !(await readFile(join(layout.dir, 'logs', 'bot.log'), 'utf8')).includes(TOKEN),
      'bot log contains the token',
    );
  });
});

describe('Discord bot and the upstream sync', () => {
  it('!stats shows credits per pool and per key; alerts when the upstream turns a key invalid and when credits run low', async (t) => {
    const emu = new DiscordEmulator(TOKEN);
    await emu.start();
    t.after(() => emu.stop());
    const fake = new FakeKindwise();
    await fake.start();
    t.after(() => fake.stop());
    const [a, b] = makeKeys(2);
    fake.addKey(a!, { limits: { day: 100 }, used: { day: 30 } });
    fake.addKey(b!, { limits: { day: 100, total: 1000 }, used: { day: 1, total: 10 } });
    const server = await startInProcess(t, {
      keys: { plantid: [a!, b!], healthid: makeKeys(1) },
      pools: { plantid: { upstream: { origin: fake.url } } },
      // The server's alert engine: only the credit and key alerts are of interest here.
      env: {
        UPSTREAM_SYNC_INTERVAL_MS: '300',
        ALERT_CHECK_INTERVAL_MS: '200',
        ALERT_MIN_AVAILABLE: '0',
        LOW_CREDITS_THRESHOLD: '50',
      },
    });
    await until(
      'the first sync',
      async () => ((await getJson(`${server.url}/api/stats`)).body as StatsResponse).pools[0]!.creditsRemaining === 169,
    );

    const { output } = spawnBot(t, server.layout.dir, emu, {
      STATS_API: `${server.url}/api/stats`,
      STATS_POLL_INTERVAL_MS: '300',
      LOW_KEYS_THRESHOLD: '0',
      DASHBOARD_URL: `${server.url}/dashboard`,
    });
    await emu
      .waitFor('presence', emu.presences, (p) => p.status === 'online')
      .catch((e: Error) => {
        throw new Error(`${e.message}\nbot output:\n${output()}`);
      });

    emu.userMessage('!stats');
    const reply = await emu.waitFor('message', emu.messages, (m) => m.channelId === TEXT_CHANNEL_ID);
    const plant = reply.body.embeds[0]!;
    assert.equal(plant.description, '**2/2** keys available · round-robin · 169 credits left');
    assert.equal(plant.url, `${server.url}/dashboard`); // the title links to the dashboard
    const credits = plant.fields!.find((f) => f.name.startsWith('Credits left'))!;
    assert.equal(credits.name, 'Credits left (169 on usable keys)');
    assert.match(
      credits.value,
      new RegExp(`^\`${maskKey(a!)}\` day 70\n\`${maskKey(b!)}\` day 99 · total 990\nsynced <t:\\d+:R>$`, 'u'),
    );

    // The upstream deactivates b: an alert names it (and its credits leave the sum, 70 left); then a spends down to 20.
    fake.setActive(b!, false);
    const invalid = await emu.waitFor(
      'message',
      emu.messages,
      (m) => m.channelId === ALERT_CHANNEL_ID && m.body.embeds[0]!.title === 'A key of pool plantid is invalid',
    );
    assert.equal(
      invalid.body.embeds[0]!.description,
      `key ${maskKey(b!)} (${keyIdOf(b!)}) of pool plantid is invalid: upstream: The specified api key is not active.`,
    );
    fake.setUsed(a!, 'day', 80);
    const low = await emu.waitFor(
      'message',
      emu.messages,
      (m) => m.channelId === ALERT_CHANNEL_ID && m.body.embeds[0]!.title === 'Pool plantid is running out of credits',
    );
    assert.equal(low.body.embeds[0]!.description, 'pool plantid has 20 credits left (alert under 50).');
    // Three more polls of the server (it counts the bot's GET /api/stats): no alert twice.
    const polls = async () => statsRequests(await (await fetch(`${server.url}/metrics`)).text());
    const seen = await polls();
    await until('three more polls', async () => (await polls()) >= seen + 3);
    assert.deepEqual(
      emu.messages.filter((m) => m.channelId === ALERT_CHANNEL_ID).map((m) => m.body.embeds[0]!.title),
      ['A key of pool plantid is invalid', 'Pool plantid is running out of credits'],
    );
    assert.ok(!output().includes(a!) && !output().includes(b!));
  });
});

describe('bot startup', () => {
  it('exits 78 (a configuration error: pm2 stops it) with one clear line when DISCORD_BOT_TOKEN is missing', async (t) => {
    const layout = await makeLayout(t);
    const p = spawn(process.execPath, entryArgs('bot/index.ts'), {
      cwd: layout.dir,
      env: { PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise((resolve) => p.once('exit', resolve));
    assert.equal(code, 78);
    assert.equal(
      out,
      'keywarden-bot: DISCORD_BOT_TOKEN: is required: the bot token from the Discord developer portal\n',
    );
  });
});
