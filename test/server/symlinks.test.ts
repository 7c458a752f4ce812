/**
 * Symlinked files stay symlinks: the real server process writes a linked STATE_FILE and a linked
 * key file (edited through the admin API) through to their targets, atomically beside them, so
 * the links keep pointing at current data.
 */
import assert from 'node:assert/strict';
import { link, lstat, mkdir, readFile, readdir, readlink, rename, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { deserializeState } from '../../server/state/state-parser.js';
import { makeKeys } from '../helpers/keys.js';
import { getJson, makeLayout, postJson, runServerProcess, spawnServer, type Layout } from '../helpers/server.js';
import { until } from '../helpers/wait.js';

const ADMIN = 'symlink-admin-token-0123456789';

describe('symlinked state and key files', () => {
  it('are written through to their targets and stay links', async (t) => {
    const [a, b] = makeKeys(2);
    const layout = await makeLayout(t, { plantid: [a!] });
    const real = join(layout.dir, 'real');
    await mkdir(real);
    // keys/plantid.txt -> real/plantid.txt; api_state.json -> real/state.json (not there yet: a new file is made)
    await rename(join(layout.keysDir, 'plantid.txt'), join(real, 'plantid.txt'));
    await symlink(join(real, 'plantid.txt'), join(layout.keysDir, 'plantid.txt'));
    const stateLink = join(layout.dir, 'api_state.json');
    const s0 = await spawnServer(t, layout, { STATE_FILE: join(real, 'state.json') });
    await getJson(`${s0.url}/api/plantid`);
    assert.equal(await s0.kill('SIGTERM'), 0);
    await symlink(join(real, 'state.json'), stateLink);

    const s = await spawnServer(t, layout, { STATE_FILE: stateLink, ADMIN_TOKEN: ADMIN });
    const added = await postJson(`${s.url}/admin/pools/plantid/keys`, { key: b }, { authorization: `Bearer ${ADMIN}` });
    assert.equal(added.status, 201);
    for (let i = 0; i < 3; i++) await getJson(`${s.url}/api/plantid`);
    assert.equal(await s.kill('SIGTERM'), 0);

    for (const [link, target] of [
      [join(layout.keysDir, 'plantid.txt'), join(real, 'plantid.txt')],
      [stateLink, join(real, 'state.json')],
    ] as const) {
      assert.ok((await lstat(link)).isSymbolicLink(), `${link} is still a link`);
      assert.equal(await readlink(link), target);
    }
    assert.equal(await readFile(join(real, 'plantid.txt'), 'utf8'), `${a}\n${b}\n`);
    const keys = deserializeState(await readFile(join(real, 'state.json'), 'utf8')).state.pools.plantid!.keys;
    assert.equal(
      Object.values(keys).reduce((n, k) => n + k.total, 0),
      4,
    );
    assert.deepEqual((await readdir(real)).sort(), ['plantid.txt', 'state.json']); // no temp files left
  });

  /** A server on `stateFile` (a link), 2 handouts, a clean stop: the link is still one, and `target` holds the 2. */
  async function servesThrough(t: TestContext, layout: Layout, link: string, target: string): Promise<string> {
    const s = await spawnServer(t, layout, { STATE_FILE: link });
    for (let i = 0; i < 2; i++) assert.equal((await getJson(`${s.url}/api/plantid`)).status, 200);
    assert.equal(await s.kill('SIGTERM'), 0);
    assert.ok((await lstat(link)).isSymbolicLink(), `${link} is still a link`);
    const keys = deserializeState(await readFile(target, 'utf8')).state.pools.plantid!.keys;
    assert.equal(
      Object.values(keys).reduce((n, k) => n + k.total, 0),
      2,
    );
    return s.output();
  }

  it('a link to an empty file, a dangling link and a link into a missing folder stay links; their targets hold the state', async (t) => {
    const layout = await makeLayout(t, { plantid: makeKeys(2) });
    const real = join(layout.dir, 'real');
    await mkdir(real);

    const toEmpty = join(layout.dir, 'empty-link.json');
    await writeFile(join(real, 'empty.json'), '');
    await symlink(join(real, 'empty.json'), toEmpty);
    const out = await servesThrough(t, layout, toEmpty, join(real, 'empty.json'));
    assert.match(out, /WARN.*state: file .*empty\.json is empty; starting fresh/u);
    assert.doesNotMatch(out, /corrupt/u);

    const dangling = join(layout.dir, 'dangling.json');
    await symlink(join(real, 'not-yet.json'), dangling);
    await servesThrough(t, layout, dangling, join(real, 'not-yet.json'));

    const intoNewFolder = join(layout.dir, 'new-folder.json');
    await symlink(join(real, 'made', 'state.json'), intoNewFolder);
    await servesThrough(t, layout, intoNewFolder, join(real, 'made', 'state.json'));
  });

  it('a corrupt target is moved aside, never the link', async (t) => {
    const layout = await makeLayout(t, { plantid: makeKeys(2) });
    const target = join(layout.dir, 'target.json');
    await writeFile(target, '{"version": 2, "pools": ');
    const link = join(layout.dir, 'link.json');
    await symlink(target, link);
    await servesThrough(t, layout, link, target);
    assert.equal(await readlink(link), target);
    assert.ok((await readdir(layout.dir)).some((f) => f.startsWith('target.json.corrupt-')));
  });

  for (const kind of ['symlink', 'hard link'] as const) {
    it(`a second server on a ${kind} to a running server's state file exits 78 naming the file and the holder`, async (t) => {
      const layout = await makeLayout(t, { plantid: makeKeys(2) });
      const first = await spawnServer(t, layout);
      await getJson(`${first.url}/api/plantid`);
      await until('a saved state', async () => (await stat(layout.stateFile).catch(() => null)) !== null);
      const other = join(layout.dir, 'other.json');
      await (kind === 'symlink' ? symlink(layout.stateFile, other) : link(layout.stateFile, other));
      const second = runServerProcess(layout, { STATE_FILE: other });
      t.after(() => void second.proc.kill('SIGKILL'));
      const timeout = new Promise((resolve) => setTimeout(resolve, 20_000, 'still running after 20 s').unref());
      assert.equal(await Promise.race([second.exited, timeout]), 78, second.output());
      assert.match(
        second.output(),
        new RegExp(`STATE_FILE .* is in use by another Keywarden server \\(pid ${first.proc.pid}`, 'u'),
      );
      assert.equal((await getJson(`${first.url}/api/plantid`)).status, 200);
    });
  }
});
