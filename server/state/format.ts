import type { PoolDrain, PoolHeader } from '../pools/pool.js';
import { isDefault, KEY_FIELDS, type FieldKind, type KindTypes } from '../pools/fields.js';
import type { KeyRecord, KeyState, PoolState, RuleRecord } from '../pools/records.js';
import { StateRecord } from '../pools/records.js';
import type { WindowClock, WindowKind } from '../pools/windows.js';

/**
 * Version of the state file format; bump with a migration when the shape changes.
 * 1: each key a full object, windows as {start, count}. 2: each pool carries the window starts
 * current at the save and each key bare counts for them, plus only the health fields that are
 * set (a quarter of the bytes). Both are read (read-state.ts); 2 is written. Format 2 later gained the optional
 * pool `seq` and key `useSeq` (least-recently-used order), and the upstream's pool `upstreamSync`
 * and key `upstreamHold` and `credits`, and the pool's apps' ledgers (`apps`); files without them
 * still read.
 */
export const STATE_VERSION = 2;

export interface StateFile {
  version: number;
  savedAt: number;
  /** Save sequence number: journal entries with a higher one apply on top of this file. */
  seq: number;
  pools: Record<string, PoolState>;
}

/** A state export (`GET /admin/state`, `keys state export`): a state file's JSON, in this format's version. */
export interface StateExport {
  version: number;
  savedAt: number;
  seq: number;
  pools: Record<string, unknown>;
}

/**
 * Every pool's state (keyIds only, never a key) as a state file of this format's version, for
 * `GET /admin/state` and `keys state export`: what importing it, or starting on it, reads back.
 */
export function stateExport(
  pools: ReadonlyArray<{ name: string; state: PoolState; clock: WindowClock }>,
  savedAt: number,
): StateExport {
  const drains = pools.map(({ name, state, clock }) => {
    const { keys, ...header } = state;
    return { name, clock, drain: () => ({ header, records: [], retired: new Map(Object.entries(keys)) }) };
  });
  return JSON.parse([...stateJsonChunks(savedAt, 0, drains, () => undefined)].join('')) as StateExport;
}

// ---------------------------------------------------------------- writing

/** Start of each window kind current at a save: written once per pool, so keys carry bare counts. */
export type WindowStarts = Record<WindowKind, number>;

const ZEROS = ['', '0', '00', '000', '0000', '00000'];

/**
 * A millisecond timestamp as JSON, like String(ms) but about twice as fast: V8 formats numbers
 * above 2^31 through its general double path, so the two halves are formatted as small integers.
 */
export function msText(ms: number): string {
  if (!Number.isInteger(ms) || ms < 1e6 || ms >= 2 ** 53) return String(ms);
  const high = Math.floor(ms / 1e6);
  const low = String(ms - high * 1e6);
  return high + ZEROS[6 - low.length]! + low;
}

/** Each kind of field as JSON text (never called with a default, which the file leaves out). */
const KIND_JSON: { [K in FieldKind]: (value: NonNullable<KindTypes[K]>) => string } = {
  hold: (v) => JSON.stringify(v),
  disabled: (v) => JSON.stringify(v),
  times: (v) => '[' + v.join(',') + ']',
  level: String,
  probe: (v) => (v === 'ready' ? '"ready"' : msText(v)),
  seq: String,
  count: String,
  time: msText,
  verdict: (v) => JSON.stringify(v),
  credits: (v) => JSON.stringify(v),
};

/** A field's key in the entry, as JSON text, computed once. */
const FIELD_KEYS = KEY_FIELDS.map((f) => ',"' + f.name + '":');

/** What a key entry writes besides its record's rule fields: kept by the pool, not the rules. */
interface Bookkeeping {
  useSeq?: number | undefined;
  reserved?: number | undefined;
  removedAt?: number | undefined;
}

/**
 * `"keyId":{…}` for the state file (format 2): total, lastUsedAt and the counts of the windows
 * current at `starts` (a count of an older window is 0: nothing reads it), then only the fields
 * of the table that are away from their default. Built by hand because saves of large pools run
 * it for every key handed out since the last save; format 1 wrote ~330 bytes a key, this ~75.
 */
function keyEntryJson(keyId: string, r: RuleRecord, book: Bookkeeping, starts: WindowStarts): string {
  // Indexes in WINDOW_KINDS order, the order of `counts` in the file.
  const counts =
    r.countIn(0, starts.minute) +
    ',' +
    r.countIn(1, starts.hour) +
    ',' +
    r.countIn(2, starts.day) +
    ',' +
    r.countIn(3, starts.month) +
    ',' +
    r.countIn(4, starts.week);
  const used = r.lastUsedAt === null ? 'null' : msText(r.lastUsedAt);
  let out = '"' + keyId + '":{"total":' + r.total + ',"lastUsedAt":' + used + ',"counts":[' + counts + ']';
  for (let i = 0; i < KEY_FIELDS.length; i++) {
    const f = KEY_FIELDS[i]!;
    const value = f.rule ? (r as unknown as Record<string, unknown>)[f.name] : book[f.name as keyof Bookkeeping];
    if (!isDefault(f, value)) out += FIELD_KEYS[i]! + (KIND_JSON[f.kind] as (v: unknown) => string)(value);
  }
  return out + '}';
}

/** The window starts current at `now` in a pool's zone. */
export function windowStartsAt(clock: WindowClock, now: number): WindowStarts {
  return {
    minute: clock.bounds('minute', now).startMs,
    hour: clock.bounds('hour', now).startMs,
    day: clock.bounds('day', now).startMs,
    month: clock.bounds('month', now).startMs,
    week: clock.bounds('week', now).startMs,
  };
}

/**
 * A whole save as JSON text, in pieces (a state file, or a journal entry when the pools' drains
 * are journal entries): the envelope of this format's version, then each pool's entry, written
 * with the window starts current in its zone at `savedAt`.
 */
export function* stateJsonChunks(
  savedAt: number,
  seq: number,
  pools: Iterable<{ name: string; clock: WindowClock; drain: () => PoolDrain }>,
  reservedOf: (rec: KeyRecord) => number | undefined,
): Generator<string> {
  yield `{"version":${STATE_VERSION},"savedAt":${savedAt},"seq":${seq},"pools":{`;
  let first = true;
  for (const pool of pools) {
    yield `${first ? '' : ','}${JSON.stringify(pool.name)}:`;
    first = false;
    const { header, records, retired } = pool.drain();
    yield* poolJsonChunks(header, records, retired, windowStartsAt(pool.clock, savedAt), reservedOf);
  }
  yield '}}';
}

/**
 * One pool's entry of the state file as JSON text, in pieces of up to `batch` keys, so a saver
 * can write a 100,000-key pool while the event loop keeps serving between pieces. Read back by
 * state-parser.ts, it gives the pool's snapshot as of `now` (counts of windows that ended read
 * as none). A journal entry is the same with only the changed records and no retired ones.
 */
export function* poolJsonChunks(
  header: PoolHeader,
  records: readonly KeyRecord[],
  retired: ReadonlyMap<string, KeyState>,
  starts: WindowStarts,
  /** The reservation to write for a record (see KeyState.reserved), or undefined for none. */
  reservedOf: (rec: KeyRecord) => number | undefined = () => undefined,
  batch = 200,
): Generator<string> {
  const head = JSON.stringify({ ...header, windowStarts: starts });
  yield `${head.slice(0, -1)},"keys":{`;
  let first = true;
  let parts: string[] = [];
  const flush = () => {
    const text = parts.join(',');
    const out = first || text === '' ? text : `,${text}`;
    if (text !== '') first = false;
    parts = [];
    return out;
  };
  for (const [keyId, st] of retired) {
    parts.push(keyEntryJson(keyId, new StateRecord(st, keyId, '', '', null), st, starts));
    if (parts.length >= batch) yield flush();
  }
  for (const rec of records) {
    parts.push(keyEntryJson(rec.keyId, rec, { useSeq: rec.useSeq, reserved: reservedOf(rec) }, starts));
    if (parts.length >= batch) yield flush();
  }
  yield `${flush()}}}`;
}
