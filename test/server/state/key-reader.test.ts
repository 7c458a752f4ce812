/**
 * The hand-written reader of format-2 key entries (state/key-reader.ts) against the zod schema it
 * stands in for: the same entries accepted, the same values given, over every field of the table
 * away from its default, absent, null and wrong, and over a 100,000-key pool as a save writes it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KEY_FIELDS, KIND_DEFAULTS, type FieldKind } from '../../../server/pools/fields.js';
import { Pool } from '../../../server/pools/pool.js';
import { DEFAULT_POLICY } from '../../../server/pools/policy.js';
import { poolJsonChunks, windowStartsAt } from '../../../server/state/format.js';
import { compactKeyState } from '../../../server/state/read-state.js';
import { readCompactKey } from '../../../server/state/key-reader.js';
import { lines, makeKeys } from '../../helpers/keys.js';

const NOW = Date.parse('2026-12-04T12:00:00Z');
const GOOD: { [K in FieldKind]: unknown } = {
  hold: { until: NOW + 1000, reason: 'r', extra: 'stripped' },
  disabled: { reason: 'r', lineHash: 'abc' },
  times: [NOW - 2, NOW - 1],
  level: 2,
  probe: 'ready',
  seq: -3,
  count: 7,
  time: NOW,
  verdict: { status: 'exhausted', reason: 'r', until: null },
  credits: {
    remaining: { day: 1, week: null, month: 2.5, total: null },
    used: { day: 0, week: 0, month: 0, total: 0 },
    limits: { day: 5, week: null, month: null, total: null },
    syncedAt: NOW,
  },
};
const BAD: unknown[] = [
  'text',
  -1,
  1.5,
  2 ** 53,
  [],
  [1, 'x'],
  {},
  { until: 'soon', reason: 'r' },
  { status: 'gone', reason: 'r', until: null },
  true,
  Infinity,
];
const BASE = { total: 3, lastUsedAt: NOW, counts: [1, 1, 1, 1, 1] };

/** A value as JSON holds it: zod leaves some absent optional fields as keys holding undefined. */
const asJson = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

function agree(raw: unknown): void {
  const fast = readCompactKey(raw);
  const zod = compactKeyState.safeParse(raw);
  assert.equal(fast !== null, zod.success, JSON.stringify(raw));
  if (zod.success) assert.deepEqual(asJson(fast), asJson(zod.data), JSON.stringify(raw));
}

describe('the hand-written key reader', () => {
  it('accepts what zod accepts, and gives what zod gives, field by field', () => {
    agree(BASE);
    agree({ ...BASE, unknownField: 1 });
    for (const f of KEY_FIELDS) {
      for (const v of [GOOD[f.kind], null, KIND_DEFAULTS[f.kind], undefined, ...BAD]) agree({ ...BASE, [f.name]: v });
    }
    for (const broken of [
      null,
      [],
      { ...BASE, total: -1 },
      { ...BASE, total: 2 ** 53 },
      { ...BASE, total: 1.5 },
      { ...BASE, lastUsedAt: 'x' },
      { ...BASE, lastUsedAt: undefined },
      { ...BASE, counts: [1, 1, 1] },
      { ...BASE, counts: [1, 1, 1, 1, 1, 1] },
      { ...BASE, counts: [1, 1, 1, -1] },
      { ...BASE, counts: undefined },
    ])
      agree(broken);
  });

  it('reads the 100,000 entries of a saved pool exactly as zod does', () => {
    const pool = new Pool('plantid', DEFAULT_POLICY);
    pool.setKeys(lines(makeKeys(100_000)), NOW);
    for (let i = 0; i < 150_000; i++) pool.handout(NOW + i);
    const text = [
      ...poolJsonChunks(pool.header(), pool.takeAll().records, new Map(), windowStartsAt(pool.clock, NOW)),
    ].join('');
    const keys = (JSON.parse(text) as { keys: Record<string, unknown> }).keys;
    const entries = Object.values(keys);
    assert.equal(entries.length, 100_000);
    for (const raw of entries) {
      const fast = readCompactKey(raw);
      assert.ok(fast, JSON.stringify(raw));
      assert.deepEqual(asJson(fast), asJson(compactKeyState.parse(raw)));
    }
  });
});
