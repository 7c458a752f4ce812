import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CorruptStateError, deserializeState, STATE_VERSION } from '../../server/state.js';

const goodKey = { windows: { day: { start: 0, count: 3 } }, total: 3, lastUsedAt: 5, block: null, exhausted: null, disabled: null, failures: [], backoffLevel: 0, probe: null };

describe('state (de)serialisation', () => {
  it('drops bad key and pool entries and says which, keeping the rest', () => {
    const text = JSON.stringify({
      version: STATE_VERSION,
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
});
