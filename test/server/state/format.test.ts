import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CorruptStateError, deserializeState, STATE_VERSION } from '../../../server/state/format.js';

const goodKey = { windows: { day: { start: 0, count: 3 } }, total: 3, lastUsedAt: 5, block: null, exhausted: null, disabled: null, failures: [], backoffLevel: 0, probe: null };

describe('state (de)serialisation', () => {
  it('drops bad key and pool entries and says which, keeping the rest', () => {
    const text = JSON.stringify({
      version: 1,
      savedAt: 1,
      pools: {
        plantid: {
          current: null,
          servedInTurn: 0,
          poolWindow: null,
          throttle: null,
          keys: { aaaaaaaaaaaa: goodKey, bbbbbbbbbbbb: { ...goodKey, total: -1 }, 'not-a-key-id': goodKey },
        },
        healthid: { current: 5 },
      },
    });
    const { state, dropped } = deserializeState(text);
    assert.deepEqual(Object.keys(state.pools), ['plantid']);
    assert.deepEqual(Object.keys(state.pools.plantid!.keys), ['aaaaaaaaaaaa']);
    assert.equal(dropped.length, 3);
    assert.match(dropped[0]!, /^pool plantid, key bbbbbbbbbbbb: total: /u);
    assert.match(dropped[1]!, /^pool plantid, key entry "not-a-key-id": not a keyId/u);
    assert.match(dropped[2]!, /^pool healthid: /u);
  });

  it('throws CorruptStateError for non-JSON and foreign JSON', () => {
    assert.throws(() => deserializeState('nope'), CorruptStateError);
    assert.throws(() => deserializeState('[]'), CorruptStateError);
    assert.throws(() => deserializeState('{"version":1}'), CorruptStateError);
  });

  it('reads format 2: bare counts against the pool\'s windowStarts, absent health fields as a healthy key\'s', () => {
    const starts = { minute: 60_000, hour: 3_600_000, day: 86_400_000, month: 0 };
    const text = JSON.stringify({
      version: STATE_VERSION,
      savedAt: 1,
      seq: 4,
      pools: {
        plantid: {
          current: 'aaaaaaaaaaaa',
          servedInTurn: 1,
          poolWindow: null,
          throttle: null,
          history: [],
          windowStarts: starts,
          keys: {
            aaaaaaaaaaaa: { total: 9, lastUsedAt: 70_000, counts: [1, 0, 5, 9] },
            bbbbbbbbbbbb: { total: 2, lastUsedAt: null, counts: [0, 0, 0, 0], block: { until: 5, reason: 'reported 429' }, backoffLevel: 2, failures: [3], probe: 'ready', removedAt: 7 },
            cccccccccccc: { total: 1, lastUsedAt: null, counts: [1, 2] },
          },
        },
        healthid: { current: null, servedInTurn: 0, poolWindow: null, throttle: null, keys: { dddddddddddd: { total: 1, lastUsedAt: null, counts: [1, 1, 1, 1] } } },
      },
    });
    const { state, dropped } = deserializeState(text);
    assert.equal(state.seq, 4);
    assert.deepEqual(state.pools.plantid!.keys, {
      aaaaaaaaaaaa: { windows: { minute: { start: 60_000, count: 1 }, day: { start: 86_400_000, count: 5 }, month: { start: 0, count: 9 } }, total: 9, lastUsedAt: 70_000, block: null, exhausted: null, disabled: null, failures: [], backoffLevel: 0, probe: null },
      bbbbbbbbbbbb: { windows: {}, total: 2, lastUsedAt: null, block: { until: 5, reason: 'reported 429' }, exhausted: null, disabled: null, failures: [3], backoffLevel: 2, probe: 'ready', removedAt: 7 },
    });
    assert.equal('windowStarts' in state.pools.plantid!, false);
    assert.deepEqual(dropped, [
      'pool plantid, key cccccccccccc: counts: Too small: expected array to have >=4 items; its entry dropped',
      "pool healthid, key dddddddddddd: counts without the pool's windowStarts; its entry dropped",
    ]);
  });
});
