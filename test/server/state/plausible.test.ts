/**
 * Absurd values in a state file are not believed: what no server can have written by the time
 * the file was saved is cleared on load, with a warning naming the pool, key and field.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { deserializeState, STATE_VERSION } from '../../../server/state/format.js';
import { keyIdOf } from '../../../shared/keys.js';
import { makeKeys } from '../../helpers/keys.js';
import { getJson, makeLayout, spawnServer } from '../../helpers/server.js';

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
    const { state, dropped } = deserializeState(text);
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
      dropped.map((d) => d.replace(/ \(2026-[^)]*\), or before 1970/u, '')),
      [
        'pool plantid, key cccccccccccc: total: Too big: expected int to be <=9007199254740991; its entry dropped',
        'pool plantid: throttle.until 1e+300 is more than 366 days after the state was saved; cleared',
        'pool plantid: history 1 minutes are after the state was saved; cleared',
        'pool plantid, key aaaaaaaaaaaa: block.until 1e+300 is more than 366 days after the state was saved; cleared',
        'pool plantid, key bbbbbbbbbbbb: probe -1 is more than 366 days after the state was saved; cleared',
        'pool plantid, key bbbbbbbbbbbb: lastUsedAt 9000000000000000 is after the state was saved; cleared',
        'pool plantid, key bbbbbbbbbbbb: failures 1 are after the state was saved; cleared',
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
      /WARN.*state: pool plantid: throttle\.until 1e\+300 is more than 366 days after the state was saved.*; cleared/u,
    );
    assert.match(
      s.output(),
      new RegExp(`WARN.*state: pool plantid, key ${keyIdOf(keys[0]!)}: block\\.until 1e\\+300 .*; cleared`, 'u'),
    );
    await s.kill('SIGTERM');
  });
});
