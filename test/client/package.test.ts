/**
 * The client as another project uses it: installed from this repo (npm links a folder
 * dependency into node_modules) and imported by package name, `keywarden/client`, from plain
 * JavaScript in a separate process. `npm install` builds dist/ (the `prepare` script).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { makeKeys } from '../helpers/keys.js';
import { freePort } from '../helpers/net.js';
import { REPO_ROOT, startInProcess } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

const SCRIPT = `
import { Keywarden, KeywardenError } from 'keywarden/client';
const [url, deadUrl] = process.argv.slice(2);
const kw = new Keywarden({ baseUrl: url });
const { keyId } = await kw.getKey('plantid');
let failure;
try {
  await new Keywarden({ baseUrl: deadUrl, timeoutMs: 2000 }).getKey('plantid');
} catch (err) {
  failure = { isKeywardenError: err instanceof KeywardenError, code: err.code, message: err.message };
}
console.log(JSON.stringify({ keyId, failure }));
`;

describe('the client as a package', () => {
  it('imports by package name from a scratch project; a server that cannot be reached is KeywardenError unreachable', async (t) => {
    const built = join(REPO_ROOT, 'dist', 'client', 'index.js');
    const [builtAt, sourceAt] = await Promise.all([
      stat(built).catch(() => null),
      stat(join(REPO_ROOT, 'client', 'index.ts')),
    ]);
    assert.ok(
      builtAt && builtAt.mtimeMs >= sourceAt.mtimeMs,
      `${built} is missing or older than client/index.ts: run npm install (or npm run build)`,
    );

    const s = await startInProcess(t, { keys: { plantid: makeKeys(1) } });
    const dir = await tempDir(t);
    await writeFile(
      join(dir, 'package.json'),
      JSON.stringify({ name: 'scratch', type: 'module', dependencies: { keywarden: `file:${REPO_ROOT}` } }),
    );
    await mkdir(join(dir, 'node_modules'));
    await symlink(REPO_ROOT, join(dir, 'node_modules', 'keywarden'), 'dir'); // what npm install does for a folder
    await writeFile(join(dir, 'app.mjs'), SCRIPT);
    // Asynchronously: the server answering it runs in this process.
    const dead = `http://127.0.0.1:${await freePort()}`; // nothing listens there
    const run = await promisify(execFile)(process.execPath, ['app.mjs', s.url, dead], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 20_000,
    });
    const out = JSON.parse(run.stdout);
    assert.match(out.keyId, /^[0-9a-f]{12}$/u);
    assert.deepEqual(
      { ...out.failure, message: undefined },
      { isKeywardenError: true, code: 'unreachable', message: undefined },
    );
    assert.equal(out.failure.message, `Keywarden at ${dead} cannot be reached (ECONNREFUSED)`);
  });
});
