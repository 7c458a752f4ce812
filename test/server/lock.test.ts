/**
 * One server per state file: a second real server process on the same STATE_FILE refuses to
 * start, naming the file and the pid that holds it; a lock left by a killed server is taken over.
 */
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { makeKeys } from '../helpers/keys.js';
import { getJson, makeLayout, runServerProcess, spawnServer } from '../helpers/server.js';

describe('the state file lock', () => {
  it('a second server on the same STATE_FILE exits 78 naming the file and pid; after a kill -9 the next one takes over', async (t) => {
    const layout = await makeLayout(t, { plantid: makeKeys(2) });
    const first = await spawnServer(t, layout);
    await getJson(`${first.url}/api/plantid`);

    const second = runServerProcess(layout);
    assert.equal(await second.exited, 78);
    assert.equal(
      second.output(),
      `keywarden: STATE_FILE ${layout.stateFile} is in use by another Keywarden server (pid ${first.proc.pid}); stop it, or give this one its own STATE_FILE\n`,
    );
    assert.equal((await getJson(`${first.url}/api/plantid`)).status, 200, 'the first server is untouched');

    assert.equal(await first.kill('SIGKILL'), 'SIGKILL');
    const third = await spawnServer(t, layout);
    assert.match(
      third.output(),
      new RegExp(
        `took over ${layout.stateFile}\\.lock, left by pid ${first.proc.pid}, which is no longer running`,
        'u',
      ),
    );
    assert.equal(await third.kill('SIGTERM'), 0);
    await assert.rejects(access(`${layout.stateFile}.lock`), 'a clean stop releases the lock');
  });
});
