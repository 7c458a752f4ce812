/**
 * Keywarden as another project installs it from git (`npm install git+file://<clone>`), which
 * runs no build step: the client ships compiled in client/dist (checked here to be what
 * client/index.ts compiles to), and the `keywarden` command runs the TypeScript through tsx.
 * The install is done as npm does it for a git dependency (a clone of the committed tree, its
 * dependencies beside it) without the registry, so the test stays on this machine; a real
 * `npm install git+file://` was run by hand (see docs/operations.md).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { makeKeys } from '../helpers/keys.js';
import { freePort } from '../helpers/net.js';
import { REPO_ROOT, startInProcess } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);

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

describe('keywarden as a package', () => {
  it('client/dist is what client/index.ts compiles to', async (t) => {
    const out = await tempDir(t);
    await run(process.execPath, [
      join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
      '-p',
      join(REPO_ROOT, 'tsconfig.client.json'),
      '--outDir',
      out,
    ]);
    for (const file of ['index.js', 'index.d.ts']) {
      const [fresh, shipped] = await Promise.all([
        readFile(join(out, file), 'utf8'),
        readFile(join(REPO_ROOT, 'client', 'dist', file), 'utf8'),
      ]);
      assert.equal(shipped, fresh, `client/dist/${file} is stale: run npm run build:client`);
    }
  });

  it('installed from git: keywarden/client imports by name, and the keywarden command answers --help and keys status', async (t) => {
    const s = await startInProcess(t, { keys: { plantid: makeKeys(1) } });
    const dir = await tempDir(t);
    await writeFile(
      join(dir, 'package.json'),
      JSON.stringify({ name: 'scratch', type: 'module', dependencies: { keywarden: `git+file://${REPO_ROOT}` } }),
    );
    const installed = join(dir, 'node_modules', 'keywarden');
    await run('git', ['clone', '--quiet', '--depth', '1', `file://${REPO_ROOT}`, installed]);
    await symlink(join(REPO_ROOT, 'node_modules'), join(installed, 'node_modules'), 'dir'); // its dependencies, as npm installs them
    await mkdir(join(dir, 'node_modules', '.bin'));
    await symlink(join(installed, 'bin', 'keywarden.mjs'), join(dir, 'node_modules', '.bin', 'keywarden'));
    await writeFile(join(dir, 'app.mjs'), SCRIPT);

    // Asynchronously: the server answering it runs in this process.
    const dead = `http://127.0.0.1:${await freePort()}`; // nothing listens there
    const app = await run(process.execPath, ['app.mjs', s.url, dead], { cwd: dir, encoding: 'utf8', timeout: 20_000 });
    const out = JSON.parse(app.stdout);
    assert.match(out.keyId, /^[0-9a-f]{12}$/u);
    assert.deepEqual(
      { ...out.failure, message: undefined },
      { isKeywardenError: true, code: 'unreachable', message: undefined },
    );
    assert.equal(out.failure.message, `Keywarden at ${dead} cannot be reached (ECONNREFUSED)`);

    const env = { PATH: `${join(dir, 'node_modules', '.bin')}:${process.env.PATH ?? ''}`, HOME: dir };
    const help = await run('keywarden', ['--help'], { cwd: dir, env, encoding: 'utf8', timeout: 20_000 });
    assert.match(help.stdout, /^usage: keywarden <command>\n/u);
    await mkdir(join(dir, 'keys'));
    await writeFile(join(dir, 'keys', 'plantid.txt'), `${makeKeys(2).join('\n')}\n`);
    const status = await run('keywarden', ['keys', 'status'], { cwd: dir, env, encoding: 'utf8', timeout: 30_000 });
    assert.match(status.stdout, /^plantid +2\/2 available/mu);
    assert.match(status.stdout, /^healthid +0\/0 available, no key file at /mu);
    const unknown = await run('keywarden', ['frobnicate'], { cwd: dir, env, encoding: 'utf8' }).catch(
      (err: { code: number; stderr: string }) => err,
    );
    assert.deepEqual(
      [(unknown as { code: number }).code, (unknown as { stderr: string }).stderr.split('\n')[0]],
      [2, 'keywarden: unknown command "frobnicate"'],
    );
  });
});
