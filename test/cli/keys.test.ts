/** The keys CLI against key files alone and against a running server's admin API (in process, and once as the real process). */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { keyIdOf, maskKey } from '../../shared/keys.js';
import { deserializeState } from '../../server/state/state-parser.js';
import { runCli, type CliRun } from '../helpers/cli.js';
import { makeKeys } from '../helpers/keys.js';
import { getJson, makeLayout, REPO_ROOT, startInProcess, type Layout } from '../helpers/server.js';

const TSX = import.meta.resolve('tsx');
const ADMIN = 'cli-admin-token-0123456789';

type CliOpts = { env?: Record<string, string>; stdin?: string };

/** In this process (fast enough to run every case); `cliProcess` is the real process, run once to show the two agree. */
const cli = runCli;

/** The real CLI process (cli/keys.ts). */
function cliProcess(layout: Layout, args: string[], opts: CliOpts = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', TSX, join(REPO_ROOT, 'cli', 'keys.ts'), ...args], {
      cwd: layout.dir,
      env: {
        PATH: process.env.PATH ?? '',
        KEYS_DIR: layout.keysDir,
        STATE_FILE: layout.stateFile,
        PORT: '1',
        ...opts.env,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.stdin.end(opts.stdin ?? '');
    p.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('keys CLI on the files (no server answering)', () => {
  it('adds from stdin, lists masked with status, removes, and reports status', async (t) => {
    const [a, b, c] = makeKeys(3);
    const layout = await makeLayout(t, { plantid: `# mine\n${a}\n` });
    const add = await cliProcess(layout, ['add', 'plantid'], { stdin: `${b}\n\n# comment\n${c}\n` }); // the real process, once
    assert.equal(add.code, 0, add.stderr);
    assert.equal(
      add.stdout,
      `added ${keyIdOf(b!)} ${maskKey(b!)} to plantid\nadded ${keyIdOf(c!)} ${maskKey(c!)} to plantid\n`,
    );
    assert.equal(await readFile(join(layout.keysDir, 'plantid.txt'), 'utf8'), `# mine\n${a}\n${b}\n${c}\n`);

    const list = await cli(layout, ['list', 'plantid']);
    assert.equal(list.code, 0);
    assert.match(list.stdout, /^plantid: 3 keys\n/u);
    assert.match(list.stdout, new RegExp(`${keyIdOf(b!)}  ${maskKey(b!).replace('…', '.')}\\s+available`, 'u'));
    for (const k of [a, b, c]) assert.ok(!list.stdout.includes(k!));

    assert.equal((await cli(layout, ['remove', 'plantid', keyIdOf(a!)])).code, 0);
    assert.equal(await readFile(join(layout.keysDir, 'plantid.txt'), 'utf8'), `# mine\n${b}\n${c}\n`);

    const status = await cli(layout, ['status']);
    assert.equal(
      status.stdout,
      `plantid      2/2 available\nhealthid     0/0 available, no key file at ${join(layout.keysDir, 'healthid.txt')}\n`,
    );
  });

  it('disables and enables in the state file when no server runs', async (t) => {
    const [a] = makeKeys(1);
    const layout = await makeLayout(t, { plantid: [a!] });
    assert.equal((await cli(layout, ['disable', 'plantid', keyIdOf(a!)])).code, 0);
    const { state } = deserializeState(await readFile(layout.stateFile, 'utf8'));
    assert.equal(state.pools.plantid!.keys[keyIdOf(a!)]!.disabled!.reason, 'disabled by cli');
    assert.match((await cli(layout, ['list'])).stdout, /disabled\s+day\s+0\s+total\s+0 \(disabled by cli\)/u);
    assert.equal((await cli(layout, ['enable', 'plantid', keyIdOf(a!)])).code, 0);
    assert.match((await cli(layout, ['list', 'plantid'])).stdout, /available\s+day\s+0\s+total\s+0$/mu);
  });

  it('clears a pool throttle in the state file when no server runs, and through a running server', async (t) => {
    const keys = makeKeys(2);
    const layout = await makeLayout(t, { plantid: keys });
    const until = Date.now() + 3_600_000;
    const header = {
      current: null,
      servedInTurn: 0,
      poolWindow: null,
      throttle: { until, reason: '2 of 2 keys reported 429' },
      history: [],
      keys: {},
    };
    await writeFile(
      layout.stateFile,
      JSON.stringify({ version: 2, savedAt: Date.now(), seq: 1, pools: { plantid: header } }),
    );
    const r = await cli(layout, ['clear-throttle', 'plantid']);
    assert.deepEqual([r.code, r.stdout], [0, 'cleared the throttle of plantid\n']);
    assert.equal(deserializeState(await readFile(layout.stateFile, 'utf8')).state.pools.plantid!.throttle, null);
    assert.equal((await cli(layout, ['clear-throttle', 'plantid'])).stdout, 'plantid was not throttled\n');

    const s = await startInProcess(t, { keys: { plantid: keys }, env: { ADMIN_TOKEN: ADMIN } });
    for (const k of keys)
      await getJson(`${s.url}/api/plantid/report`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ keyId: keyIdOf(k), status: 429 }),
      });
    const viaApi = await cli(s.layout, ['clear-throttle', 'plantid'], {
      env: { KEYWARDEN_URL: s.url, ADMIN_TOKEN: ADMIN },
    });
    assert.deepEqual([viaApi.code, viaApi.stdout], [0, 'cleared the throttle of plantid\n']);
    assert.equal((await getJson(`${s.url}/api/plantid`)).status, 200);
  });

  it('state export and import move the rotation state: offline from the files, and through a running server', async (t) => {
    const keys = makeKeys(2);
    const from = await startInProcess(t, { keys: { plantid: keys }, env: { ADMIN_TOKEN: ADMIN } });
    for (let i = 0; i < 5; i++) await getJson(`${from.url}/api/plantid`);
    const file = join(from.layout.dir, 'export.json');
    const env = { KEYWARDEN_URL: from.url, ADMIN_TOKEN: ADMIN };
    const exported = await cli(from.layout, ['state', 'export', file], { env });
    assert.deepEqual([exported.code, exported.stdout], [0, `exported the state of plantid, healthid to ${file}\n`]);
    const text = await readFile(file, 'utf8');
    for (const k of keys) assert.ok(!text.includes(k), 'an export holds a plaintext key');

    // Into a fresh layout with no server running: the state file now holds the counts.
    const layout = await makeLayout(t, { plantid: keys });
    const imported = await cli(layout, ['state', 'import', file]);
    assert.deepEqual([imported.code, imported.stdout], [0, `imported the state of plantid, healthid from ${file}\n`]);
    const saved = deserializeState(await readFile(layout.stateFile, 'utf8')).state.pools.plantid!;
    assert.deepEqual(
      Object.values(saved.keys)
        .map((k) => k.total)
        .sort(),
      [2, 3],
    );

    // And back through a running server (its admin API), replacing what it counted meanwhile.
    const to = await startInProcess(t, { keys: { plantid: keys }, env: { ADMIN_TOKEN: ADMIN } });
    await getJson(`${to.url}/api/plantid`);
    assert.equal(
      (await cli(to.layout, ['state', 'import', file], { env: { KEYWARDEN_URL: to.url, ADMIN_TOKEN: ADMIN } })).code,
      0,
    );
    const st = (await getJson(`${to.url}/api/stats`)).body;
    assert.deepEqual(st.pools[0].keys.map((k: { served: { total: number } }) => k.served.total).sort(), [2, 3]);

    const bad = await cli(layout, ['state', 'import', join(layout.dir, 'nope.json')]);
    assert.deepEqual(
      [bad.code, bad.stderr],
      [1, `keywarden-keys: ${join(layout.dir, 'nope.json')}: cannot be read (ENOENT)\n`],
    );
  });

  it('every error is one line and a non-zero exit', async (t) => {
    const [a] = makeKeys(1);
    const layout = await makeLayout(t, { plantid: [a!] });
    const cases: Array<[string[], string | undefined, RegExp, number]> = [
      [
        ['frobnicate'],
        undefined,
        /^keywarden-keys: unknown command "frobnicate"; run "npm run keys -- help" for usage\n$/u,
        2,
      ],
      [['add', 'nopool'], a, /^keywarden-keys: unknown pool "nopool" \(pools: plantid, healthid\)\n$/u, 1],
      [['add', 'plantid'], `${a}\n`, /^keywarden-keys: 1 of the keys is already in the pool \([0-9a-f]{12}\)\n$/u, 1],
      [['add', 'plantid'], 'bad key\n', /^keywarden-keys: key 1 of 1 is not a valid key/u, 1],
      [['add', 'plantid'], '', /^keywarden-keys: no keys given/u, 1],
      [['remove', 'plantid', 'abcdefabcdef'], undefined, /^keywarden-keys: no key abcdefabcdef in /u, 1],
      [['remove', 'plantid', 'XYZ'], undefined, /^keywarden-keys: keyId "XYZ" is not 12 lowercase hex characters/u, 1],
      [['disable', 'plantid'], undefined, /^keywarden-keys: missing <keyId>; run/u, 2],
    ];
    const redisOffline = await cli(layout, ['status'], { env: { STATE_BACKEND: 'redis' } });
    assert.deepEqual([redisOffline.code, redisOffline.stderr.split('\n').length], [1, 2]);
    assert.match(
      redisOffline.stderr,
      /^keywarden-keys: with STATE_BACKEND=redis, "status" goes through a running server's admin API/u,
    );
    for (const [args, stdin, message, code] of cases) {
      const r = await cli(layout, args, { stdin });
      assert.equal(r.code, code, args.join(' '));
      assert.match(r.stderr, message, args.join(' '));
      assert.equal(r.stderr.split('\n').length, 2, args.join(' '));
      assert.ok(!r.stderr.includes('bad key'));
    }
  });
});

describe('keys CLI through the admin API', () => {
  it('talks to the running server when ADMIN_TOKEN is set: changes show in stats at once', async (t) => {
    const [a, b] = makeKeys(2);
    const s = await startInProcess(t, { keys: { plantid: [a!] }, env: { ADMIN_TOKEN: ADMIN } });
    const env = { KEYWARDEN_URL: s.url, ADMIN_TOKEN: ADMIN };
    const add = await cli(s.layout, ['add', 'plantid'], { env, stdin: `${b}\n` });
    assert.equal(add.code, 0, add.stderr);
    assert.equal((await getJson(`${s.url}/api/stats`)).body.pools[0].total, 2);
    assert.ok(
      s.lines.some((l) => l.includes('admin: added 1 key(s) to pool plantid')),
      'went through the API',
    );
    assert.equal((await cli(s.layout, ['disable', 'plantid', keyIdOf(a!)], { env })).code, 0);
    assert.equal((await getJson(`${s.url}/api/stats`)).body.pools[0].disabled, 1);
    assert.match((await cli(s.layout, ['list', 'plantid'], { env })).stdout, /disabled by admin/u);
    assert.match((await cli(s.layout, ['status'], { env })).stdout, /^plantid\s+1\/2 available, 1 disabled$/mu);
    const bad = await cli(s.layout, ['status'], {
      env: { KEYWARDEN_URL: s.url, ADMIN_TOKEN: 'wrong-token-0123456789' },
    });
    assert.deepEqual(
      [bad.code, bad.stderr],
      [1, `keywarden-keys: ADMIN_TOKEN was refused by the server at ${s.url}\n`],
    );
  });

  it('with a server running but no ADMIN_TOKEN, file edits still work and state edits are refused', async (t) => {
    const [a, b] = makeKeys(2);
    const s = await startInProcess(t, { keys: { plantid: [a!] } });
    const env = { KEYWARDEN_URL: s.url };
    assert.equal((await cli(s.layout, ['add', 'plantid'], { env, stdin: `${b}\n` })).code, 0);
    const r = await cli(s.layout, ['disable', 'plantid', keyIdOf(a!)], { env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /without ADMIN_TOKEN; set ADMIN_TOKEN/u);
  });
});

describe('keys CLI on a terminal', () => {
  it('reads the key from a hidden prompt (never echoed)', async (t) => {
    const [a] = makeKeys(1);
    const layout = await makeLayout(t, { plantid: [] });
    // `script` gives the CLI a real pseudo-terminal; what we write is typed at the prompt.
    const cmd = `${process.execPath} --import ${TSX} ${join(REPO_ROOT, 'cli', 'keys.ts')} add plantid`;
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = spawn('script', ['-qec', cmd, '/dev/null'], {
        cwd: layout.dir,
        env: {
          PATH: process.env.PATH ?? '',
          KEYS_DIR: layout.keysDir,
          STATE_FILE: layout.stateFile,
          PORT: '1',
          TERM: 'dumb',
        },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let out = '';
      p.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('key (input hidden): ') && !p.stdin.writableEnded) p.stdin.end(`${a}\r`);
      });
      p.once('exit', (code) => resolve({ code, out }));
    });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, new RegExp(`added ${keyIdOf(a!)}`, 'u'));
    assert.ok(!r.out.includes(a!), 'the key was echoed');
    assert.equal(await readFile(join(layout.keysDir, 'plantid.txt'), 'utf8'), `\n${a}\n`);
  });
});
