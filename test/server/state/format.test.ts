import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keyIdOf } from '../../../shared/keys.js';
import { DEFAULT_POLICY } from '../../../server/pools/policy.js';
import { Pool } from '../../../server/pools/pool.js';
import { CorruptStateError, ForeignStateError } from '../../../server/state/errors.js';
import { poolJsonChunks, STATE_VERSION, windowStartsAt } from '../../../server/state/format.js';
import { deserializeState } from '../../../server/state/state-parser.js';
import { lines, makeKeys } from '../../helpers/keys.js';

const goodKey = {
  windows: { day: { start: 0, count: 3 } },
  total: 3,
  lastUsedAt: 5,
  block: null,
  exhausted: null,
  disabled: null,
  failures: [],
  backoffLevel: 0,
  probe: null,
};

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
    // Sound JSON with none of Keywarden's fields: another program's state, said so.
    assert.throws(() => deserializeState('{"plantid":{"current_index":2}}'), ForeignStateError);
    assert.throws(
      () => deserializeState('{"version":1}'),
      (e) => !(e instanceof ForeignStateError),
    );
  });

  it("reads format 2: bare counts against the pool's windowStarts, absent health fields as a healthy key's", () => {
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
            bbbbbbbbbbbb: {
              total: 2,
              lastUsedAt: null,
              counts: [0, 0, 0, 0],
              block: { until: 5, reason: 'reported 429' },
              backoffLevel: 2,
              failures: [3],
              probe: 'ready',
              removedAt: 7,
            },
            cccccccccccc: { total: 1, lastUsedAt: null, counts: [1, 2] },
          },
        },
        healthid: {
          current: null,
          servedInTurn: 0,
          poolWindow: null,
          throttle: null,
          keys: { dddddddddddd: { total: 1, lastUsedAt: null, counts: [1, 1, 1, 1] } },
        },
      },
    });
    const { state, dropped } = deserializeState(text);
    assert.equal(state.seq, 4);
    assert.deepEqual(state.pools.plantid!.keys, {
      aaaaaaaaaaaa: {
        windows: {
          minute: { start: 60_000, count: 1 },
          day: { start: 86_400_000, count: 5 },
          month: { start: 0, count: 9 },
        },
        total: 9,
        lastUsedAt: 70_000,
        block: null,
        exhausted: null,
        disabled: null,
        failures: [],
        backoffLevel: 0,
        probe: null,
      },
      bbbbbbbbbbbb: {
        windows: {},
        total: 2,
        lastUsedAt: null,
        block: { until: 5, reason: 'reported 429' },
        exhausted: null,
        disabled: null,
        failures: [3],
        backoffLevel: 2,
        probe: 'ready',
        removedAt: 7,
      },
    });
    assert.equal('windowStarts' in state.pools.plantid!, false);
    assert.deepEqual(dropped, [
      'pool plantid, key cccccccccccc: counts: Too small: expected array to have >=4 items; its entry dropped',
      "pool healthid, key dddddddddddd: counts without the pool's windowStarts; its entry dropped",
    ]);
  });

  it("writes and reads the upstream's verdict, credits and the pool's upstreamSync (a file written before them still reads)", () => {
    const now = Date.parse('2026-11-21T12:00:00Z');
    const [a, b] = makeKeys(2);
    const pool = new Pool('plantid', DEFAULT_POLICY);
    pool.setKeys(lines([a!, b!]), now);
    const credits = {
      remaining: { day: 0, week: null, month: 40, total: null },
      used: { day: 100, week: null, month: 60, total: null },
      limits: { day: 100, week: null, month: 100, total: null },
      syncedAt: now,
    };
    pool.recordUpstream(
      {
        reached: true,
        keyId: keyIdOf(a!),
        finding: { status: 'exhausted', reason: 'day limit', window: 'day' },
        credits,
      },
      now,
    );
    pool.recordUpstream({ reached: false, error: 'connect ECONNREFUSED 127.0.0.1:9' }, now + 1);
    const { records, retired } = pool.takeAll();
    const text = `{"version":${STATE_VERSION},"savedAt":${now + 1},"seq":1,"pools":{"plantid":${[...poolJsonChunks(pool.header(), records, retired, windowStartsAt(pool.clock, now))].join('')}}}`;
    assert.equal(text.includes(a!), false);
    const { state, dropped } = deserializeState(text);
    assert.deepEqual(dropped, []);
    const back = new Pool('plantid', DEFAULT_POLICY);
    back.setKeys(lines([a!, b!]), now);
    back.restore(state.pools.plantid!, now + 1);
    const s = back.stats(now + 1);
    assert.deepEqual(
      [s.keys[0]!.status, s.keys[0]!.reason, s.keys[0]!.until, s.keys[0]!.credits],
      ['exhausted', 'upstream: day limit', Date.parse('2026-11-22T00:00:00Z'), credits],
    );
    assert.deepEqual(s.upstreamSync, { ok: false, at: now + 1, error: 'connect ECONNREFUSED 127.0.0.1:9' });
  });
});
