/**
 * The field table (pools/fields.ts) drives every encoding of a key's record: each row, away from
 * its default, survives the record the rules read, the state file and the Redis hash, with no
 * code written for it here. A row added to the table is covered by these tests as it stands.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KEY_FIELDS, KIND_DEFAULTS, type FieldKind } from '../../../server/pools/fields.js';
import { emptyKeyState, KeyRecord, StateRecord, STRIDE, type KeyState } from '../../../server/pools/records.js';
import { poolJsonChunks, type WindowStarts } from '../../../server/state/format.js';
import { deserializeState } from '../../../server/state/state-parser.js';
import { hashOf, keyStateOf } from '../../../server/redis/codec.js';
import { fieldSamples } from '../../helpers/field-samples.js';

const SAVED_AT = Date.UTC(2026, 11, 4, 12);
/** A value of each kind away from its default, plausible at SAVED_AT (the reader drops implausible times). */
const SAMPLES = fieldSamples(SAVED_AT);
const KEY_ID = 'a1b2c3d4e5f6';
const STARTS: WindowStarts = {
  minute: SAVED_AT,
  hour: SAVED_AT,
  day: Date.UTC(2026, 11, 4),
  month: Date.UTC(2026, 11, 1),
  week: Date.UTC(2026, 10, 30),
};

/** A key state with only `name` away from its default (and a count, so it is not an empty key). */
function stateWith(name: string, kind: FieldKind): KeyState {
  return { ...emptyKeyState(), total: 5, lastUsedAt: SAVED_AT - 100, [name]: SAMPLES[kind] };
}

function fileRoundTrip(records: KeyRecord[], retired: Map<string, KeyState>, reserved?: number): KeyState {
  const header = { current: null, servedInTurn: 0, poolWindow: null, throttle: null, history: [] };
  const pool = [...poolJsonChunks(header, records, retired, STARTS, () => reserved)].join('');
  const text = `{"version":2,"savedAt":${SAVED_AT},"seq":1,"pools":{"p":${pool}}}`;
  const { state, dropped } = deserializeState(text);
  assert.deepEqual(dropped, []);
  return state.pools.p!.keys[KEY_ID]!;
}

describe('the field table', () => {
  it('has unique names and Redis codes, and a default and a sample for every kind it uses', () => {
    assert.equal(new Set(KEY_FIELDS.map((f) => f.name)).size, KEY_FIELDS.length);
    const codes = KEY_FIELDS.flatMap((f) => (f.redis ? [f.redis] : []));
    assert.equal(new Set(codes).size, codes.length);
    for (const f of KEY_FIELDS) assert.notDeepEqual(SAMPLES[f.kind], KIND_DEFAULTS[f.kind], f.name);
  });

  for (const f of KEY_FIELDS) {
    describe(`${f.name} (${f.kind})`, () => {
      const state = stateWith(f.name, f.kind);

      if (f.rule) {
        it('is carried by a live record and a record read from state, and written back by toState', () => {
          const rec = new KeyRecord(state, 0, KEY_ID, 'k', 'k…', 'lh', null, new Float64Array(STRIDE));
          assert.deepEqual((rec as unknown as Record<string, unknown>)[f.name], SAMPLES[f.kind]);
          assert.deepEqual((rec.toState() as unknown as Record<string, unknown>)[f.name], SAMPLES[f.kind]);
          const read = new StateRecord(state, KEY_ID, 'k…', 'lh', null);
          assert.deepEqual((read as unknown as Record<string, unknown>)[f.name], SAMPLES[f.kind]);
        });
      }

      it('survives the state file', () => {
        const retired = new Map([[KEY_ID, state]]);
        const back = fileRoundTrip([], retired) as unknown as Record<string, unknown>;
        assert.deepEqual(back[f.name], SAMPLES[f.kind]);
      });

      it('is left out of the state file at its default, and read back as its default', () => {
        const back = fileRoundTrip([], new Map([[KEY_ID, { ...emptyKeyState(), total: 1, lastUsedAt: SAVED_AT }]]));
        const text = [...poolJsonChunks({} as never, [], new Map([[KEY_ID, emptyKeyState()]]), STARTS)].join('');
        assert.doesNotMatch(text, new RegExp(`"${f.name}"`, 'u'));
        const value = (back as unknown as Record<string, unknown>)[f.name];
        if (f.optional) assert.equal(value, undefined);
        else assert.deepEqual(value, KIND_DEFAULTS[f.kind]);
      });

      if (f.redis !== null) {
        it('survives the Redis hash', () => {
          const back = keyStateOf(hashOf(state)) as unknown as Record<string, unknown>;
          assert.deepEqual(back[f.name], SAMPLES[f.kind]);
        });
      } else {
        it('is not kept in the Redis hash', () => {
          const back = keyStateOf(hashOf(state)) as unknown as Record<string, unknown>;
          assert.equal(back[f.name], undefined);
        });
      }
    });
  }

  it("a live record's reservation and order are written from the pool's bookkeeping", () => {
    const rec = new KeyRecord(stateWith('useSeq', 'seq'), 0, KEY_ID, 'k', 'k…', 'lh', null, new Float64Array(STRIDE));
    const back = fileRoundTrip([rec], new Map(), 99);
    assert.equal(back.useSeq, SAMPLES.seq);
    assert.equal(back.reserved, 99);
    assert.equal(back.removedAt, undefined);
  });
});
