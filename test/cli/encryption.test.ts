/**
 * Key files encrypted at rest, end to end: the CLI encrypts a file, the real server serves from
 * it, keys added through the admin API are written encrypted, rotate-secret re-encrypts under a
 * new secret, decrypt gives the plaintext back; every error names the file and line, never a key.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadServerConfig } from '../../server/config.js';
import { keyIdOf } from '../../shared/keys.js';
import { runCli } from '../helpers/cli.js';
import { makeKeys } from '../helpers/keys.js';
import { getJson, makeLayout, postJson, runServerProcess, spawnServer, type Layout } from '../helpers/server.js';
import { until } from '../helpers/wait.js';

const ADMIN = 'encryption-admin-token-0123456789';

const cli = (layout: Layout, args: string[], env: Record<string, string> = {}) => runCli(layout, args, { env });

describe('key files encrypted at rest', () => {
  it('encrypt, serve, add through the admin API, rotate the secret, decrypt', async (t) => {
    const [a, b, c] = makeKeys(3);
    const layout = await makeLayout(t, { plantid: `# team keys\n${a}  # expires=2099-01-01\n${b}\n` });
    const file = join(layout.keysDir, 'plantid.txt');
    const secret = randomBytes(32).toString('base64');
    const next = randomBytes(32).toString('hex');

    assert.deepEqual(await cli(layout, ['encrypt', 'plantid'], { KEYS_SECRET: secret }), {
      code: 0,
      stdout: `encrypted 2 keys in ${file}\n`,
      stderr: '',
    });
    const encrypted = await readFile(file, 'utf8');
    assert.ok(!encrypted.includes(a!) && !encrypted.includes(b!), 'a plaintext key is left in the file');
    assert.match(encrypted, /^# team keys\nenc:v1:\S+ {2}# expires=2099-01-01\nenc:v1:\S+\n$/u);

    const s = await spawnServer(t, layout, { KEYS_SECRET: secret, ADMIN_TOKEN: ADMIN });
    const got = (await getJson(`${s.url}/api/plantid`)).body;
    assert.deepEqual([got.key, got.keyId], [a, keyIdOf(a!)]); // keyIds are of the plaintext: state and stats unchanged
    assert.equal(
      (await postJson(`${s.url}/admin/pools/plantid/keys`, { key: c }, { authorization: `Bearer ${ADMIN}` })).status,
      201,
    );
    const withC = await readFile(file, 'utf8');
    assert.ok(
      !withC.includes(c!) && withC.trimEnd().split('\n').at(-1)!.startsWith('enc:v1:'),
      'an added key is written encrypted',
    );

    // Rotate: the running server, still on the old secret, keeps its keys and says why.
    const rotated = await cli(layout, ['rotate-secret', 'plantid'], { KEYS_SECRET: secret, KEYS_SECRET_NEW: next });
    assert.equal(
      rotated.stdout,
      `re-encrypted 3 keys in ${file}; now set KEYS_SECRET to the new secret where the server runs, and restart it\n`,
    );
    await until('the old server to notice', async () =>
      /does not decrypt with KEYS_SECRET \(and 2 more lines\); keeping the 3 keys already loaded/u.test(s.output()),
    );
    assert.equal((await getJson(`${s.url}/api/plantid`)).status, 200);
    assert.equal(await s.kill('SIGTERM'), 0);
    const s2 = await spawnServer(t, layout, { KEYS_SECRET: next });
    assert.equal((await getJson(`${s2.url}/api/stats`)).body.pools[0].total, 3);
    assert.equal(await s2.kill('SIGTERM'), 0);

    assert.equal((await cli(layout, ['decrypt', 'plantid'], { KEYS_SECRET: next })).code, 0);
    assert.equal(await readFile(file, 'utf8'), `# team keys\n${a}  # expires=2099-01-01\n${b}\n${c}\n`);
    for (const out of [s.output(), s2.output()])
      for (const k of [a, b, c]) assert.ok(!out.includes(k!), 'a key in a log line');
  });

  it('a disabled key stays disabled when its file is encrypted (its line counts as unchanged)', async (t) => {
    const [a, b] = makeKeys(2);
    const layout = await makeLayout(t, { plantid: [a!, b!] });
    const secret = randomBytes(32).toString('hex');
    assert.equal((await cli(layout, ['disable', 'plantid', keyIdOf(a!)])).code, 0);
    assert.equal((await cli(layout, ['encrypt', 'plantid'], { KEYS_SECRET: secret })).code, 0);
    assert.match(
      (await cli(layout, ['list', 'plantid'], { KEYS_SECRET: secret })).stdout,
      new RegExp(`${keyIdOf(a!)}.*disabled`, 'u'),
    );
  });

  it('start-up errors name the file and line, never the key; rotate-secret writes nothing when a line does not decrypt', async (t) => {
    const [a, b] = makeKeys(2);
    const layout = await makeLayout(t, { plantid: [a!] });
    const file = join(layout.keysDir, 'plantid.txt');
    const secret = randomBytes(32).toString('base64');
    await cli(layout, ['encrypt', 'plantid'], { KEYS_SECRET: secret });
    await writeFile(file, `${await readFile(file, 'utf8')}${b}\n`); // a plaintext line beside the encrypted one is fine

    const cases: Array<[Record<string, string>, string]> = [
      [{}, `keywarden: KEYS_SECRET: ${file} line 1 holds an encrypted key (enc:v1) but no KEYS_SECRET is set\n`],
      [
        { KEYS_SECRET: randomBytes(32).toString('base64') },
        `keywarden: KEYS_SECRET: ${file} line 1 holds an encrypted key (enc:v1) that does not decrypt with KEYS_SECRET\n`,
      ],
    ];
    for (const [env, line] of cases) {
      const p = runServerProcess(layout, env);
      assert.equal(await p.exited, 78, line);
      assert.equal(p.output(), line);
    }
    // A bad secret is a configuration error like any other (the process path of those is tested in server/index.test.ts).
    assert.throws(() => loadServerConfig({ KEYS_SECRET: 'too-short' }), {
      message: 'KEYS_SECRET: must be 32 bytes as 64 hex characters or base64 (e.g. from: openssl rand -base64 32)',
    });
    assert.throws(() => loadServerConfig({ KEYS_SECRET_FILE: join(layout.dir, 'missing') }), {
      message: `KEYS_SECRET_FILE: ${join(layout.dir, 'missing')} cannot be read (ENOENT)`,
    });
    assert.throws(() => loadServerConfig({ KEYS_SECRET: secret, KEYS_SECRET_FILE: 'x' }), {
      message: 'KEYS_SECRET: set either KEYS_SECRET or KEYS_SECRET_FILE, not both',
    });
    const secretFile = join(layout.dir, 'secret');
    await writeFile(secretFile, `${secret}\n`);
    const ok = await spawnServer(t, layout, { KEYS_SECRET_FILE: secretFile });
    assert.equal((await getJson(`${ok.url}/api/stats`)).body.pools[0].total, 2);
    assert.equal(await ok.kill('SIGTERM'), 0);

    const before = await readFile(file, 'utf8');
    const wrong = await cli(layout, ['rotate-secret', 'plantid'], {
      KEYS_SECRET: randomBytes(32).toString('hex'),
      KEYS_SECRET_NEW: secret,
    });
    assert.deepEqual(
      [wrong.code, wrong.stderr],
      [
        1,
        `keywarden-keys: ${file} line 1 holds an encrypted key (enc:v1) that does not decrypt with KEYS_SECRET; nothing was written\n`,
      ],
    );
    assert.equal(await readFile(file, 'utf8'), before);
    assert.equal(
      (await cli(layout, ['encrypt', 'plantid'])).stderr,
      `keywarden-keys: KEYS_SECRET: set it (or KEYS_SECRET_FILE) to encrypt ${file}\n`,
    );
  });
});
