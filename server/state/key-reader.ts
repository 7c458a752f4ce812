import { KEY_FIELDS, KIND_DEFAULTS, recordValue, type FieldKind } from '../pools/fields.js';
import { WINDOW_KINDS } from '../pools/windows.js';

/**
 * A format-2 key entry of the state file read by hand: what `compactKeyState` (read-state.ts) accepts,
 * the same value it gives, without zod, which took most of a big state file's start (a million
 * keys: 39% of 18 s in parsing). Each kind of the field table has its check and copy here; an
 * entry this refuses goes to zod, which says why (test/server/state/key-reader.test.ts holds the
 * two to the same answers).
 */

type Raw = Record<string, unknown>;
/** A value's copy as zod would give it (its declared fields only), or NOT_VALID. */
const NOT_VALID = Symbol('not valid');
type Read = (v: unknown) => unknown;

const isObject = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);
const isMs = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

const hold: Read = (v) =>
  isObject(v) && isMs(v.until) && typeof v.reason === 'string' ? { until: v.until, reason: v.reason } : NOT_VALID;
const creditWindows = (v: unknown): unknown => {
  if (!isObject(v)) return NOT_VALID;
  const out: Raw = {};
  for (const w of ['day', 'week', 'month', 'total']) {
    const n = v[w];
    if (n !== null && !isMs(n)) return NOT_VALID;
    out[w] = n;
  }
  return out;
};

/** Each kind, not null/absent: its value as zod gives it, or NOT_VALID. */
const KIND_READS: { [K in FieldKind]: Read } = {
  hold,
  disabled: (v) =>
    isObject(v) && typeof v.reason === 'string' && typeof v.lineHash === 'string'
      ? { reason: v.reason, lineHash: v.lineHash }
      : NOT_VALID,
  times: (v) => (Array.isArray(v) && v.every(isMs) ? [...v] : NOT_VALID),
  level: (v) => (isCount(v) ? v : NOT_VALID),
  probe: (v) => (v === 'ready' || isMs(v) ? v : NOT_VALID),
  seq: (v) => (Number.isSafeInteger(v) ? v : NOT_VALID),
  count: (v) => (isCount(v) ? v : NOT_VALID),
  time: (v) => (isMs(v) ? v : NOT_VALID),
  verdict: (v) =>
    isObject(v) &&
    (v.status === 'invalid' || v.status === 'exhausted') &&
    typeof v.reason === 'string' &&
    (v.until === null || isMs(v.until))
      ? { status: v.status, reason: v.reason, until: v.until }
      : NOT_VALID,
  credits: (v) => {
    if (!isObject(v) || !isMs(v.syncedAt)) return NOT_VALID;
    const out: Raw = { syncedAt: v.syncedAt };
    for (const part of ['remaining', 'used', 'limits']) {
      const w = creditWindows(v[part]);
      if (w === NOT_VALID) return NOT_VALID;
      out[part] = w;
    }
    return { remaining: out.remaining, used: out.used, limits: out.limits, syncedAt: out.syncedAt };
  },
};

/**
 * A format-2 key entry as compactKeyState parses it: `{total, lastUsedAt, counts, …fields}`, the
 * table's fields at their defaults where absent; null when zod would refuse it (ask zod why).
 * With the pool's window starts (`starts`, in WINDOW_KINDS order), the counts come back as the
 * persisted `windows` instead (a count of 0, or of a window with no start, is no window): the
 * KeyState itself, without a copy in between.
 */
export function readCompactKey(raw: unknown, starts?: ReadonlyArray<number | undefined>): Raw | null {
  if (!isObject(raw)) return null;
  const { total, lastUsedAt, counts } = raw;
  if (!isCount(total) || !(lastUsedAt === null || isMs(lastUsedAt))) return null;
  if (!Array.isArray(counts) || counts.length < 4 || counts.length > 5 || !counts.every(isCount)) return null;
  let out: Raw;
  if (starts) {
    const windows: Raw = {};
    for (let i = 0; i < WINDOW_KINDS.length; i++) {
      const start = starts[i];
      if ((counts[i] ?? 0) > 0 && start !== undefined) windows[WINDOW_KINDS[i]!] = { start, count: counts[i] };
    }
    out = { windows, total, lastUsedAt };
  } else out = { total, lastUsedAt, counts: [...counts] };
  for (const f of KEY_FIELDS) {
    const v = raw[f.name];
    if (v === undefined) {
      if (!f.optional) out[f.name] = recordValue(f, undefined);
      continue;
    }
    if (v === null) {
      if (KIND_DEFAULTS[f.kind] !== null) return null; // only kinds whose default is null take it
      out[f.name] = null;
      continue;
    }
    const read = KIND_READS[f.kind](v);
    if (read === NOT_VALID) return null;
    out[f.name] = read;
  }
  return out;
}
