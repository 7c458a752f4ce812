/**
 * Absurd values in a state file are not believed: what no server can have written by the time
 * the file was saved is cleared on load, with a warning naming the pool, key and field.
 */
import assert from 'node:assert/strict';
import { readdir, writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { STATE_VERSION } from '../../../server/state/format.js';
import { deserializeState } from '../../../server/state/state-parser.js';
import { keyIdOf } from '../../../shared/keys.js';
import { makeKeys } from '../../helpers/keys.js';
import { getJson, makeLayout, postJson, spawnServer, startInProcess } from '../../helpers/server.js';

const ADMIN = 'plausible-admin-token-0123456789';

const SAVED_AT = Date.parse('2026-11-21T12:00:00Z');

function stateWith(pool: Record<string, unknown>, keys: Record<string, unknown>): string {
  const header = {
    current: null,
    servedInTurn: 0,
    poolWindow: null,
    throttle: null,
    history: [],
    windowStarts: {
      minute: SAVED_AT,
      hour: SAVED_AT,
      day: Date.parse('2026-11-21T00:00:00Z'),
      month: Date.parse('2026-11-01T00:00:00Z'),
    },
  };
  return JSON.stringify({
    version: STATE_VERSION,
    savedAt: SAVED_AT,
    seq: 1,
    pools: { plantid: { ...header, ...pool, keys } },
  });
}

describe('implausible state', () => {
  it('clears end times past the horizon and events after the save, keeping every count', () => {
    const text = stateWith(
      { throttle: { until: 1e300, reason: 'x' }, history: [{ start: SAVED_AT + 5e12, count: 3 }] },
      {
        aaaaaaaaaaaa: {
          total: 7,
          lastUsedAt: SAVED_AT,
          counts: [1, 2, 3, 4],
          block: { until: 1e300, reason: 'x' },
          exhausted: { until: SAVED_AT + 3_600_000, reason: 'quota' },
        },
        bbbbbbbbbbbb: {
          total: 2,
          lastUsedAt: 9e15,
          counts: [5, 0, 0, 0],
          probe: -1,
          failures: [SAVED_AT, SAVED_AT + 1e12],
        },
        cccccccccccc: { total: 1e300, lastUsedAt: null, counts: [0, 0, 0, 0] },
      },
    );
    const { state, dropped } = deserializeState(text, SAVED_AT); // read the moment it was saved
    const pool = state.pools.plantid!;
    assert.equal(pool.throttle, null);
    assert.deepEqual(pool.history, []);
    const a = pool.keys.aaaaaaaaaaaa!;
    assert.deepEqual([a.block, a.exhausted?.reason, a.total, a.windows.month?.count], [null, 'quota', 7, 4]);
    const b = pool.keys.bbbbbbbbbbbb!;
    assert.deepEqual(
      [b.lastUsedAt, b.probe, b.failures, b.windows.minute, b.total],
      [null, null, [SAVED_AT], undefined, 2],
    );
    assert.equal(pool.keys.cccccccccccc, undefined); // a total no double holds exactly: the entry is unreadable
    assert.deepEqual(
      dropped.map((d) => d.replace(/ \(now is 2026-[^)]*\), or before 1970/u, '')),
      [
        'pool plantid, key cccccccccccc: total: Too big: expected int to be <=9007199254740991; its entry dropped',
        'pool plantid: throttle.until 1e+300 is more than 366 days ahead; cleared',
        'pool plantid: history 1 minutes are in the future; cleared',
        'pool plantid, key aaaaaaaaaaaa: block.until 1e+300 is more than 366 days ahead; cleared',
        'pool plantid, key bbbbbbbbbbbb: probe -1 is more than 366 days ahead; cleared',
        'pool plantid, key bbbbbbbbbbbb: lastUsedAt 9000000000000000 is in the future; cleared',
        'pool plantid, key bbbbbbbbbbbb: failures 1 are in the future; cleared',
        "pool plantid, key bbbbbbbbbbbb: windows.minute.count 5 is more than the key's total (2); cleared",
      ],
    );
  });

  it('a pool throttled "until 1e300" in the state file serves at once after a restart, and the log names pool and field', async (t) => {
    const keys = makeKeys(2);
    const layout = await makeLayout(t, { plantid: keys });
    const now = Date.now();
    const text = JSON.stringify({
      version: STATE_VERSION,
      savedAt: now,
      seq: 1,
      pools: {
        plantid: {
          current: null,
          servedInTurn: 0,
          poolWindow: null,
          throttle: { until: 1e300, reason: 'edited' },
          history: [],
          keys: {
            [keyIdOf(keys[0]!)]: {
              windows: {},
              total: 3,
              lastUsedAt: now,
              block: { until: 1e300, reason: 'edited' },
              exhausted: null,
              disabled: null,
              failures: [],
              backoffLevel: 0,
              probe: null,
            },
          },
        },
      },
    }).replace('"version":2', '"version":1');
    await writeFile(layout.stateFile, text);
    const s = await spawnServer(t, layout);
    const got = await getJson(`${s.url}/api/plantid`);
    assert.equal(got.status, 200);
    const st = (await getJson(`${s.url}/api/stats`)).body.pools[0];
    assert.deepEqual(
      [st.throttledUntil, st.blocked, st.keys[0].served.total],
      [null, 0, 3 + (got.body.keyId === keyIdOf(keys[0]!) ? 1 : 0)],
    );
    assert.match(
      s.output(),
      /WARN.*state: pool plantid: throttle\.until 1e\+300 is more than 366 days ahead.*; cleared/u,
    );
    assert.match(
      s.output(),
      new RegExp(`WARN.*state: pool plantid, key ${keyIdOf(keys[0]!)}: block\\.until 1e\\+300 .*; cleared`, 'u'),
    );
    await s.kill('SIGTERM');
  });

  for (const savedAt of [1e300, -1e20, 8.7e15]) {
    it(`a state file saved "at" ${savedAt} starts the server: the file is moved aside with an ERROR, and the import is a 400 naming savedAt`, async (t) => {
      const keys = makeKeys(1);
      const layout = await makeLayout(t, { plantid: keys });
      const text = stateWith({}, {}).replace(`"savedAt":${SAVED_AT}`, `"savedAt":${savedAt}`);
      await writeFile(layout.stateFile, text);
      const s = await spawnServer(t, layout, { ADMIN_TOKEN: ADMIN });
      assert.equal((await getJson(`${s.url}/api/plantid`)).status, 200);
      assert.match(s.output(), /ERROR.*state: file .* is not a Keywarden state file \(savedAt: is not a time/u);
      assert.ok((await readdir(layout.dir)).some((f) => f.startsWith('api_state.json.corrupt-')));
      const imported = await postJson(`${s.url}/admin/state`, JSON.parse(text), { authorization: `Bearer ${ADMIN}` });
      assert.equal(imported.status, 400);
      assert.equal(imported.body.error, 'invalid_state');
      assert.match(imported.body.message, /savedAt: is not a time/u);
      await s.kill('SIGTERM');
    });
  }

  it('an import dated a century ahead holds no key longer than 366 days from now', async (t) => {
    const keys = makeKeys(2);
    const s = await startInProcess(t, { keys: { plantid: keys }, env: { ADMIN_TOKEN: ADMIN } });
    const century = Date.now() + 100 * 365 * 86_400_000;
    const key = (until: number) => ({
      windows: {},
      total: 1,
      lastUsedAt: null,
      block: { until, reason: 'from the future' },
      exhausted: null,
      disabled: null,
      failures: [],
      backoffLevel: 0,
      probe: null,
    });
    const file = {
      version: 1,
      savedAt: century,
      seq: 0,
      pools: {
        plantid: {
          current: null,
          servedInTurn: 0,
          poolWindow: null,
          throttle: null,
          history: [],
          // One block ends a century ahead (dropped), one an hour ahead (kept).
          keys: { [keyIdOf(keys[0]!)]: key(century + 3_600_000), [keyIdOf(keys[1]!)]: key(Date.now() + 3_600_000) },
        },
      },
    };
    const r = await postJson(`${s.url}/admin/state`, file, { authorization: `Bearer ${ADMIN}` });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.imported, ['plantid']);
    assert.match(r.body.dropped.join('\n'), /block\.until \d+ is more than 366 days ahead/u);
    const got = await getJson(`${s.url}/api/plantid`);
    assert.deepEqual([got.status, got.body.keyId], [200, keyIdOf(keys[0]!)]);
    const blocked = (await getJson(`${s.url}/api/stats`)).body.pools[0].keys.find(
      (k: { keyId: string }) => k.keyId === keyIdOf(keys[1]!),
    );
    assert.equal(blocked.status, 'blocked');
  });
});
