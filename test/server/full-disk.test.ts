/**
 * The real server process with its state on a small real tmpfs: a disk that fills up never
 * truncates the state file (the last good save stays, the failure is logged, counted and
 * retried), and a final save that fails at shutdown is an ERROR and a non-zero exit, not "bye".
 */
import assert from 'node:assert/strict';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { deserializeState } from '../../server/state/state-parser.js';
import { makeKeys } from '../helpers/keys.js';
import { call, getJson, makeLayout, spawnServer } from '../helpers/server.js';
import { tinyTmpfs } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

/** Room for the state file of 700 keys (about 100 KB) and its temp file while a save runs. */
const TMPFS_KIB = 256;

const failures = async (url: string) =>
  Number(/^keywarden_state_save_failures_total (\d+)/mu.exec((await call(`${url}/metrics`)).text)?.[1] ?? -1);
const totalServed = (text: string, pool = 'plantid') =>
  Object.values(deserializeState(text).state.pools[pool]!.keys).reduce((n, k) => n + k.total, 0);

/**
 * Keeps `workers` requests to a pool in flight until `stop()`, each worker pausing `pauseMs`
 * between its requests (a steady load, not all the CPU there is); what came back, by status and error.
 */
function load(url: string, pool: string, workers: number, pauseMs = 0) {
  let stopped = false;
  const answers = new Map<string, number>();
  let served = 0;
  let noRetryAfter = 0;
  const worker = async () => {
    while (!stopped) {
      const r = await call(`${url}/api/${pool}`);
      const what = r.status === 200 ? '200' : `${r.status} ${(r.body as { error?: string })?.error}`;
      answers.set(what, (answers.get(what) ?? 0) + 1);
      if (r.status === 200) served++;
      if (r.status === 503 && !r.headers.get('retry-after')) noRetryAfter++;
      if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  };
  const running = Array.from({ length: workers }, worker);
  return {
    stop: async () => {
      stopped = true;
      await Promise.all(running);
      return { answers: Object.fromEntries(answers), served, noRetryAfter };
    },
  };
}

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
    // The log is written asynchronously, and its pipe is read apart from the metrics' answer.
    await until('the failure logged', async () =>
      /ERROR.*state: save to file .* failed: .*ENOSPC.*; will retry/u.test(s.output()),
    );
    assert.equal(await readFile(stateFile, 'utf8'), good, 'the last good state file is untouched');

    // Space again: the next timed save goes through, with every handout.
    await rm(join(state, 'filler'));
    await until('a save after the disk has room', async () => totalServed(await readFile(stateFile, 'utf8')) === 705);
    await until('the recovery logged', async () => /saving to file .* works again/u.test(s.output()));

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

  it('under load, with the disk full: a pool with limits answers 503 state_unavailable, one without serves on, the logs stay small; with space again it serves within 2 s and no count is lost', async (t) => {
    const state = await tinyTmpfs(t, TMPFS_KIB);
    if (!state) return t.skip('no tmpfs');
    // Blocks of 100 reserved uses a key (1/50 of the day's 5,000): spent within seconds under this load.
    const layout = await makeLayout(
      t,
      { plantid: makeKeys(20), healthid: makeKeys(3) },
      { plantid: { limits: { perDay: 5000 } } },
    );
    const stateFile = join(state, 'api_state.json');
    const s = await spawnServer(t, layout, { STATE_FILE: stateFile, STATE_SAVE_INTERVAL_MS: '50' });
    // Each key's first block reserved (and saved) while there is room: the load starts on them.
    for (let i = 0; i < 20; i++) assert.equal((await getJson(`${s.url}/api/plantid`)).status, 200);
    await until('a saved state', async () => totalServed(await readFile(stateFile, 'utf8').catch(() => '{}')) === 20);
    // Every byte taken: the write fails part-way with ENOSPC and what it wrote stays.
    await writeFile(join(state, 'filler'), Buffer.alloc(TMPFS_KIB * 1024)).catch(() => {});
    // A save in flight meanwhile frees its old file's space when it lands (temp file, rename): taken too.
    await new Promise((r) => setTimeout(r, 200));
    await writeFile(join(state, 'filler-2'), Buffer.alloc(TMPFS_KIB * 1024)).catch(() => {});

    const limited = load(s.url, 'plantid', 4, 2);
    const unlimited = load(s.url, 'healthid', 2, 2);
    await new Promise((r) => setTimeout(r, 20_000)); // the load runs: nothing to wait on but time
    const [lim, unlim] = [await limited.stop(), await unlimited.stop()];
    assert.deepEqual(Object.keys(lim.answers).sort(), ['200', '503 state_unavailable'], JSON.stringify(lim));
    assert.deepEqual(Object.keys(unlim.answers), ['200'], JSON.stringify(unlim));
    assert.equal(lim.noRetryAfter, 0);
    assert.ok(unlim.served > 1000, `the pool without limits served ${unlim.served}`);
    const logBytes = (await stat(layout.logFile)).size;
    assert.ok(logBytes < 100 * 1024, `log ${logBytes} bytes`);
    assert.ok(Buffer.byteLength(s.output()) < 100 * 1024, `stdout ${Buffer.byteLength(s.output())} bytes`);

    await rm(join(state, 'filler'));
    await rm(join(state, 'filler-2'), { force: true });
    const freedAt = performance.now();
    let back = 0;
    while ((await getJson(`${s.url}/api/plantid`)).status !== 200) back++;
    const waited = performance.now() - freedAt;
    t.diagnostic(
      `limits ${JSON.stringify(lim.answers)}, no limits ${JSON.stringify(unlim.answers)}, log ${logBytes} B, ` +
        `stdout ${Buffer.byteLength(s.output())} B, served again after ${Math.round(waited)} ms`,
    );
    assert.ok(waited < 2000, `served again after ${Math.round(waited)} ms (${back} refusals first)`);
    assert.equal(await s.kill('SIGTERM'), 0);
    const saved = await readFile(stateFile, 'utf8');
    // Every handout answered 200 is counted: the first 20, the load's, the one that came back.
    assert.equal(totalServed(saved), 20 + lim.served + 1);
    assert.equal(totalServed(saved, 'healthid'), unlim.served);
  });
});
