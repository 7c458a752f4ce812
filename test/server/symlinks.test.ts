/**
 * Symlinked files stay symlinks: the real server process writes a linked STATE_FILE and a linked
 * key file (edited through the admin API) through to their targets, atomically beside them, so
 * the links keep pointing at current data.
 */
import assert from 'node:assert/strict';
import { lstat, mkdir, readFile, readdir, readlink, rename, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { deserializeState } from '../../server/state/format.js';
import { makeKeys } from '../helpers/keys.js';
import { getJson, makeLayout, postJson, spawnServer } from '../helpers/server.js';

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
});
