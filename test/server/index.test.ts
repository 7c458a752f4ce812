/**
 * The real server process (server/index.ts) on an ephemeral port: concurrency, signals, crashes,
 * corrupt state, live key-file edits, startup errors, and no plaintext key anywhere.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { keyIdOf } from '../../shared/keys.js';
import type { StatsResponse } from '../../shared/stats.js';
import { type StateFile } from '../../server/state/format.js';
import { deserializeState } from '../../server/state/state-parser.js';
import { FileStore } from '../../server/state/file.js';
import { makeKeys } from '../helpers/keys.js';
import { getJson, makeLayout, postJson, runServerProcess, spawnServer } from '../helpers/server.js';
import { until } from '../helpers/wait.js';

async function stats(url: string): Promise<StatsResponse> {
  return (await getJson(`${url}/api/stats`)).body as StatsResponse;
}

function servedTotal(s: StatsResponse, pool = 'plantid'): number {
  return s.pools.find((p) => p.name === pool)!.keys.reduce((sum, k) => sum + k.served.total, 0);
}

/** Keeps `concurrency` requests in flight until told to stop; counts 200s per keyId. */
function load(url: string, concurrency: number) {
  let stopped = false;
  const ok = new Map<string, number>();
  let okCount = 0;
  let failed = 0;
  const worker = async () => {
    while (!stopped) {
      try {
        const res = await getJson(`${url}/api/plantid`);
        const body = res.body as { keyId?: string };
        if (res.status === 200) {
          okCount++;
          ok.set(body.keyId!, (ok.get(body.keyId!) ?? 0) + 1);
        }
      } catch {
        failed++;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  return {
    get okCount() {
      return okCount;
    },
    ok,
    stop: async () => {
      stopped = true;
      await Promise.all(workers);
      return { okCount, failed };
    },
  };
}

describe('server process', () => {
  it('2,000 concurrent requests against total limits hand out exactly the allowed number, no key over', async (t) => {
    const keys = makeKeys(10);
    const layout = await makeLayout(t, { plantid: keys }, { plantid: { limits: { total: 150 } } });
    const s = await spawnServer(t, layout);
    const results = await Promise.all(Array.from({ length: 2000 }, () => getJson(`${s.url}/api/plantid`)));
    const okResults = results.filter((r) => r.status === 200);
    assert.equal(okResults.length, 1500);
    assert.equal(results.filter((r) => r.status === 503 && r.body.error === 'no_key_available').length, 500);
    const perKey = new Map<string, number>();
    for (const r of okResults) perKey.set(r.body.keyId, (perKey.get(r.body.keyId) ?? 0) + 1);
    assert.deepEqual([...perKey.values()], Array(10).fill(150));
    const st = await stats(s.url);
    assert.deepEqual(
      st.pools[0]!.keys.map((k) => k.served.total),
      Array(10).fill(150),
    );
    assert.equal(st.pools[0]!.exhausted, 10);
  });

  it('SIGTERM mid-load saves on the way out and a restart resumes the counts exactly', async (t) => {
    const keys = makeKeys(5);
    const layout = await makeLayout(t, { plantid: keys }, { plantid: { rotateEvery: 7 } });
    const s = await spawnServer(t, layout, { STATE_SAVE_INTERVAL_MS: '60000' }); // only the shutdown save counts
    const l = load(s.url, 20);
    await until('some handouts', async () => l.okCount >= 300);
    const code = await s.kill('SIGTERM');
    const { okCount } = await l.stop();
    assert.equal(code, 0);
    assert.match(s.output(), /state saved; bye/u);

    const again = await spawnServer(t, layout);
    const st = await stats(again.url);
    assert.equal(servedTotal(st), okCount);
    for (const k of st.pools[0]!.keys) assert.equal(k.served.total, l.ok.get(k.keyId) ?? 0, k.keyId);
    // Position resumes too: the current key finishes its turn of 7 before the next takes over.
    const cur = st.pools[0]!.current!;
    const next = (await getJson(`${again.url}/api/plantid`)).body;
    if (cur.remaining! > 0) assert.equal(next.keyId, cur.keyId);
    else assert.notEqual(next.keyId, cur.keyId);
    await again.kill('SIGINT');
  });

  it("tells pm2 it is ready, and pm2's shutdown message saves and exits 0", async (t) => {
    const layout = await makeLayout(t, { plantid: makeKeys(2) });
    const s = await spawnServer(t, layout, { STATE_SAVE_INTERVAL_MS: '60000' }, true);
    await until('ready message', async () => s.messages.includes('ready'));
    for (let i = 0; i < 3; i++) await getJson(`${s.url}/api/plantid`);
    s.proc.send('shutdown');
    assert.equal(await s.exited, 0);
    assert.match(s.output(), /shutting down \(pm2 shutdown message\)/u);
    const { state } = deserializeState(await readFile(layout.stateFile, 'utf8'));
    assert.equal(
      Object.values(state.pools.plantid!.keys).reduce((n, k) => n + k.total, 0),
      3,
    );
  });

  it('kill -9 mid-load leaves a state file (and journal) that loads whole', async (t) => {
    // 3,000 keys make the state big enough for journal saves, so a crash can land mid-append too.
    const layout = await makeLayout(t, { plantid: makeKeys(3000) });
    const s = await spawnServer(t, layout, { STATE_SAVE_INTERVAL_MS: '50' });
    const l = load(s.url, 20);
    await until('a few saves', async () => l.okCount >= 2000, 20_000);
    assert.equal(await s.kill('SIGKILL'), 'SIGKILL');
    const { okCount } = await l.stop();
    const loaded = await new FileStore(layout.stateFile).loadReadOnly();
    assert.equal(loaded.kind, 'loaded');
    const state = (loaded as { state: StateFile }).state;
    // At most a torn last journal entry (a crash mid-append) is left out.
    assert.ok(
      (loaded as { dropped: string[] }).dropped.every((d) => /last entry was cut short/u.test(d)),
      JSON.stringify(loaded),
    );
    const saved = Object.values(state.pools.plantid!.keys).reduce((sum, k) => sum + k.total, 0);
    assert.ok(saved > 0 && saved <= okCount, `saved ${saved} of ${okCount}`);
    const again = await spawnServer(t, layout);
    assert.deepEqual(
      (await readdir(layout.dir)).filter((f) => f.includes('tmp') || f.includes('corrupt')),
      [],
    );
    assert.equal(servedTotal(await stats(again.url)), saved);
    assert.doesNotMatch(again.output(), /corrupt/u);
  });

  it("coming from the Flask service: its api_state.json is moved aside as another program's state, FLASK_RUN_PORT is honoured", async (t) => {
    const layout = await makeLayout(t, { plantid: makeKeys(2) });
    const flask = JSON.stringify({ plantid: { current_index: 1, usage: { k1: 12 } }, last_reset: '2026-11-30' });
    await writeFile(layout.stateFile, flask);
    const s = await spawnServer(t, layout, { PORT: undefined, FLASK_RUN_PORT: '0' });
    const moved = (await readdir(layout.dir)).filter((f) => f.startsWith('api_state.json.not-keywarden-'));
    assert.equal(moved.length, 1);
    assert.equal(await readFile(join(layout.dir, moved[0]!), 'utf8'), flask);
    assert.match(
      s.output(),
      /WARN\s+state: .*api_state\.json holds another program's state, not Keywarden's \(it has none of version, savedAt, pools; its fields: "plantid", "last_reset"\), such as the Flask service's api_state\.json; moved it to .*not-keywarden-.*starting fresh/u,
    );
    assert.doesNotMatch(s.output(), /ERROR|corrupt/u);
    assert.match(s.output(), /PORT is not set: listening on FLASK_RUN_PORT \(0\), as the Flask service did/u);
    assert.equal((await getJson(`${s.url}/api/plantid`)).status, 200);
  });

  it('a corrupt state file is moved aside, logged, and the server starts fresh', async (t) => {
    const layout = await makeLayout(t, { plantid: makeKeys(2) });
    await writeFile(layout.stateFile, '{"version":1,"pools":{"plantid":{"keys":');
    const s = await spawnServer(t, layout);
    const moved = (await readdir(layout.dir)).filter((f) => f.startsWith('api_state.json.corrupt-'));
    assert.equal(moved.length, 1);
    assert.equal(await readFile(join(layout.dir, moved[0]!), 'utf8'), '{"version":1,"pools":{"plantid":{"keys":');
    assert.match(
      s.output(),
      /ERROR state: .*api_state\.json is not valid JSON.*moved it to .*corrupt-.*starting fresh/u,
    );
    assert.equal((await getJson(`${s.url}/api/plantid`)).status, 200);
    assert.equal(await s.kill('SIGTERM'), 0);
    // The fresh state the server saved on its way out: readable, with what the one handout counted.
    const saved = deserializeState(readFileSync(layout.stateFile, 'utf8'));
    assert.deepEqual(saved.dropped, []);
    assert.equal(
      Object.values(saved.state.pools.plantid!.keys).reduce((n, k) => n + k.total, 0),
      1,
    );
  });

  it('key-file edits apply without a restart (the poll reads them); staying keys keep counters and blocks', async (t) => {
    const [a, b, c] = makeKeys(3);
    const layout = await makeLayout(t, { plantid: [a!, b!] });
    const s = await spawnServer(t, layout);
    for (let i = 0; i < 4; i++) await getJson(`${s.url}/api/plantid`);
    await postJson(`${s.url}/api/plantid/report`, { keyId: keyIdOf(b!), outcome: 'rate_limited', retryAfter: 600 });
    const file = join(layout.keysDir, 'plantid.txt');
    await writeFile(file, `# rotated keys\n${b}\r\n${c}\n`);
    const st = await until('the edit to apply', async () => {
      const x = await stats(s.url);
      return x.pools[0]!.total === 2 && x.pools[0]!.keys.some((k) => k.keyId === keyIdOf(c!)) ? x : undefined;
    });
    const kb = st.pools[0]!.keys.find((k) => k.keyId === keyIdOf(b!))!;
    assert.equal(kb.served.total, 2);
    assert.equal(kb.status, 'blocked');
    assert.ok(!st.pools[0]!.keys.some((k) => k.keyId === keyIdOf(a!)));
    // a left rotation, b is blocked: only c is handed out.
    for (let i = 0; i < 3; i++) assert.equal((await getJson(`${s.url}/api/plantid`)).body.key, c);
    // The log is written asynchronously: its line may come a moment after the answers above.
    await until('the reload logged', async () =>
      /reloaded .*plantid\.txt: 1 added, 1 removed, 1 kept/u.test(s.output()),
    );
  });

  it('no plaintext key in stats, logs, stdout or the state file', async (t) => {
    const keys = makeKeys(4);
    const layout = await makeLayout(
      t,
      { plantid: [...keys, `bad ${keys[0]}x`, keys[1]!], healthid: keys.slice(2) },
      { plantid: { limits: { perMinute: 3 } } },
    );
    const s = await spawnServer(t, layout, { LOG_LEVEL: 'debug' });
    for (let i = 0; i < 15; i++) await getJson(`${s.url}/api/plantid`);
    await postJson(`${s.url}/api/healthid/report`, { keyId: keyIdOf(keys[2]!), outcome: 'invalid' });
    await postJson(`${s.url}/api/healthid/report`, { keyId: keyIdOf(keys[3]!), status: 429 });
    const statsText = JSON.stringify(await stats(s.url));
    assert.equal(await s.kill('SIGTERM'), 0);
    const logText = await readFile(layout.logFile, 'utf8');
    const stateText = await readFile(layout.stateFile, 'utf8');
    assert.match(logText, /line 5: skipped/u);
    assert.match(logText, /exhausted/u);
    for (const key of keys) {
      for (const [what, text] of [
        ['stats', statsText],
        ['log file', logText],
        ['stdout', s.output()],
        ['state', stateText],
      ] as const) {
        assert.ok(!text.includes(key), `${what} contains a plaintext key`);
        assert.ok(!text.includes(key.slice(4, -4)), `${what} contains the middle of a key`);
      }
    }
  });
});

describe('server startup errors', () => {
  const cases: Array<[string, Record<string, string>, unknown, RegExp]> = [
    ['a bad PORT', { PORT: 'eighty' }, undefined, /^keywarden: PORT: must be a whole number \(got "eighty"\)\n$/u],
    [
      'a public HOST without tokens',
      { HOST: '0.0.0.0' },
      undefined,
      /^keywarden: API_TOKENS: required when HOST is not a loopback address/u,
    ],
    [
      'a bad pools.json',
      {},
      { plantid: { strategy: 'best' } },
      /^keywarden: .*pools\.json: pool plantid: strategy: .*\n$/u,
    ],
    [
      'a LOG_FILE whose folder cannot be created',
      { LOG_FILE: '/dev/null/logs/server.log' },
      undefined,
      /^keywarden: LOG_FILE: cannot create the folder for \/dev\/null\/logs\/server\.log \(ENOTDIR\)\n$/u,
    ],
  ];
  for (const [what, env, pools, message] of cases) {
    it(`${what} exits 78 (a configuration error) with one line naming it`, async (t) => {
      const layout = await makeLayout(t, {}, pools);
      const p = runServerProcess(layout, env);
      const guard = setTimeout(() => p.proc.kill('SIGKILL'), 20_000); // a hang fails the test instead of stalling the suite
      t.after(() => clearTimeout(guard));
      assert.equal(await p.exited, 78);
      assert.match(p.output(), message);
      assert.equal(p.output().trim().split('\n').length, 1);
    });
  }
});
