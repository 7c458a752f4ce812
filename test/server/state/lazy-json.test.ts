/**
 * The lazy reading of a state file: the same value as JSON.parse, but each pool's key entries
 * left as their JSON texts until read; anything that is not JSON is still refused.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keyEntry, parseStateText } from '../../../server/state/lazy-json.js';

/** The lazy value with every key entry parsed: what JSON.parse gives. */
function resolved(v: unknown): unknown {
  const s = v as { pools?: Record<string, { keys?: Record<string, unknown> }> };
  for (const pool of Object.values(s.pools ?? {}))
    if (pool && typeof pool === 'object' && pool.keys)
      for (const [id, entry] of Object.entries(pool.keys)) pool.keys[id] = keyEntry(entry);
  return v;
}

describe('state text read lazily', () => {
  it('gives what JSON.parse gives: tricky strings, nesting, spaces, an app named keys, a pool named __proto__', () => {
    const state = {
      version: 2,
      savedAt: 1,
      seq: 3,
      pools: {
        plantid: {
          current: 'aaaaaaaaaaaa',
          apps: { keys: { handouts: 1, spent: 1, windows: {}, lastSeenAt: null } },
          pins: { 'ref "with" {braces} and \\\\ slashes': ['aaaaaaaaaaaa', 5] },
          keys: {
            aaaaaaaaaaaa: { total: 2, counts: [1, 2, 3, 4, 5], disabled: { reason: 'a }] ", tricky', lineHash: 'x' } },
            bbbbbbbbbbbb: { total: 0, lastUsedAt: null, counts: [0, 0, 0, 0, 0] },
          },
        },
        empty: { keys: {} },
      },
    };
    const text = JSON.stringify(state);
    const lazy = parseStateText(text) as { pools: { plantid: { keys: Record<string, unknown> } } };
    assert.equal(typeof lazy.pools.plantid.keys.aaaaaaaaaaaa, 'string', 'key entries are left as text');
    assert.deepEqual(resolved(lazy), JSON.parse(text));
    assert.deepEqual(resolved(parseStateText(JSON.stringify(state, null, 2))), JSON.parse(text));
    const proto = parseStateText('{"version":2,"pools":{"__proto__":{"keys":{}}}}') as { pools: object };
    assert.deepEqual(Object.keys(proto.pools), ['__proto__']);
  });

  it('refuses what is not JSON, as JSON.parse does', () => {
    for (const bad of ['{"version":2,"pools":{"plantid":{"keys":{"a":{', '{"version":2} x', 'nope', '{"a":1,}'])
      assert.throws(() => parseStateText(bad), SyntaxError, bad);
  });
});
