/**
 * The real server process with its state on a small real tmpfs: a disk that fills up never
 * truncates the state file (the last good save stays, the failure is logged, counted and
 * retried), and a final save that fails at shutdown is an ERROR and a non-zero exit, not "bye".
 */
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { deserializeState } from '../../server/state/format.js';
import { makeKeys } from '../helpers/keys.js';
import { getJson, makeLayout, spawnServer } from '../helpers/server.js';
import { tinyTmpfs } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

/** Room for the state file of 700 keys (about 100 KB) and its temp file while a save runs. */
const TMPFS_KIB = 256;

const failures = async (url: string) =>
  Number(/^keywarden_state_save_failures_total (\d+)/mu.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? -1);
const totalServed = (text: string) =>
  Object.values(deserializeState(text).state.pools.plantid!.keys).reduce((n, k) => n + k.total, 0);

describe('a full disk under the state file', () => {
  it('keeps the last good state, logs and counts the failure, retries; a failed final save exits non-zero', async (t) => {
    const state = await tinyTmpfs(t, TMPFS_KIB);
    if (!state) return t.skip('no tmpfs');
    const layout = await makeLayout(t, { plantid: makeKeys(700) });
    const stateFile = join(state, 'api_state.json');
    const s = await spawnServer(t, layout, { STATE_FILE: stateFile, STATE_SAVE_INTERVAL_MS: '50' });
    for (let i = 0; i < 700; i++) await getJson(`${s.url}/api/plantid`); // every key used: a state file of ~60 KB
    await until('a save of all 700 handouts', async () => totalServed(await readFile(stateFile, 'utf8')) === 700);
    const good = await readFile(stateFile, 'utf8');

    const free = 8 * 1024;
    await writeFile(join(state, 'filler'), Buffer.alloc(TMPFS_KIB * 1024 - good.length - free - 4096));
    for (let i = 0; i < 5; i++) await getJson(`${s.url}/api/plantid`);
    await until('a failed save, counted', async () => (await failures(s.url)) >= 1);
    assert.match(s.output(), /ERROR.*state: save to file .* failed: .*ENOSPC.*; will retry/u);
    assert.equal(await readFile(stateFile, 'utf8'), good, 'the last good state file is untouched');

    // Space again: the next timed save goes through, with every handout.
    await rm(join(state, 'filler'));
    await until('a save after the disk has room', async () => totalServed(await readFile(stateFile, 'utf8')) === 705);
    assert.match(s.output(), /saving to file .* works again/u);

    // Full again, then SIGTERM: the final save fails, and the process says so and exits non-zero.
    await writeFile(join(state, 'filler'), Buffer.alloc(TMPFS_KIB * 1024 - good.length - free - 4096));
    await getJson(`${s.url}/api/plantid`);
    const code = await s.kill('SIGTERM');
    assert.notEqual(code, 0);
    assert.doesNotMatch(s.output(), /bye/u);
    assert.match(s.output(), /ERROR.*state: save to file .* failed/u);
    assert.match(s.output(), /keywarden: shutdown failed: /u);
    assert.equal(totalServed(await readFile(stateFile, 'utf8')), 705, 'the file still holds the last good save');
  });
});
