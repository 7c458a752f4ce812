import { z } from 'zod';
import type { PoolDrain, PoolHeader } from '../pools/pool.js';
import { isDefault, KEY_FIELDS, recordValue, type FieldKind, type KindTypes } from '../pools/fields.js';
import type { KeyRecord, KeyState, PoolState, RuleRecord } from '../pools/records.js';
import { StateRecord } from '../pools/records.js';
import { clearImplausible } from './plausible.js';
import { readCompactKey } from './key-reader.js';
import { WINDOW_KINDS, type WindowClock, type WindowKind } from '../pools/windows.js';
import { CorruptStateError, ForeignStateError } from './errors.js';
import { keyEntry, parseStateText } from './lazy-json.js';

/**
 * Version of the state file format; bump with a migration when the shape changes.
 * 1: each key a full object, windows as {start, count}. 2: each pool carries the window starts
 * current at the save and each key bare counts for them, plus only the health fields that are
 * set (a quarter of the bytes). Both are read; 2 is written. Format 2 later gained the optional
 * pool `seq` and key `useSeq` (least-recently-used order), and the upstream's pool `upstreamSync`
 * and key `upstreamHold` and `credits`, and the pool's apps' ledgers (`apps`); files without them
 * still read.
 */
export const STATE_VERSION = 2;
const READABLE_VERSIONS = [1, 2];

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

const ms = z.number().finite();
/** A count: a whole number a double holds exactly (1e300 is none). */
const countSchema = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const counter = z.object({ start: ms, count: countSchema });
const KEY_ID = /^[0-9a-f]{12}$/u;
const keyIdSchema = z.string().regex(KEY_ID);
const block = z.object({ until: ms, reason: z.string() });
const disabled = z.object({ reason: z.string(), lineHash: z.string() });
const probe = z.union([z.literal('ready'), ms]);
const upstreamHold = z.object({ status: z.enum(['invalid', 'exhausted']), reason: z.string(), until: ms.nullable() });
const creditCount = z.number().finite().nullable();
const creditWindows = z.object({ day: creditCount, week: creditCount, month: creditCount, total: creditCount });
const credits = z.object({ remaining: creditWindows, used: creditWindows, limits: creditWindows, syncedAt: ms });
const upstreamSync = z.object({ ok: z.boolean(), at: ms, error: z.string().nullable() });
/** Each kind of field of the field table (pools/fields.ts) as the state file holds it. */
const KIND_SCHEMAS: { [K in FieldKind]: z.ZodType<KindTypes[K]> } = {
  hold: block.nullable(),
  disabled: disabled.nullable(),
  times: z.array(ms),
  level: z.number().int().nonnegative(),
  probe: probe.nullable(),
  seq: z.number().int().optional(),
  count: countSchema.optional(),
  time: ms.optional(),
  verdict: upstreamHold.nullable(),
  credits: credits.nullable(),
};

/**
 * The table's fields of a key entry: format 1 has every field that is not optional, format 2
 * (`compact`) only those away from their default.
 */
function fieldSchemas(compact: boolean): Record<string, z.ZodType> {
  const shape: Record<string, z.ZodType> = {};
  for (const f of KEY_FIELDS) {
    const schema = KIND_SCHEMAS[f.kind] as z.ZodType;
    if (f.optional) shape[f.name] = schema.optional();
    else shape[f.name] = compact ? schema.default(() => recordValue(f, undefined)) : schema;
  }
  return shape;
}

/** An app's ledger in a pool (pools/budgets.ts AppLedger), by app name. */
const ledgers = z.record(
  z.string().regex(/^[a-z0-9_-]{1,64}$/u, 'is not an app name'),
  z.object({
    handouts: countSchema,
    spent: countSchema,
    windows: z.object({ day: counter, week: counter, month: counter }).partial(),
    lastSeenAt: ms.nullable(),
    reserved: countSchema.optional(),
  }),
);
const windowsSchema = z.object({ minute: counter, hour: counter, day: counter, month: counter, week: counter });
/** Format 1's key entry: every field, windows as {start, count}. */
const keyState = z.object({
  windows: windowsSchema.partial(),
  total: countSchema,
  lastUsedAt: ms.nullable(),
  ...fieldSchemas(false),
});
/** Format 2's key entry: counts of the pool's `windowStarts` windows; absent fields are at their default. */
export const compactKeyState = z.object({
  total: countSchema,
  lastUsedAt: ms.nullable(),
  counts: z.array(countSchema).min(4).max(5),
  ...fieldSchemas(true),
});
/** `week` is absent in files written before perWeek existed (their counts have four entries). */
const windowStartsSchema = z.object({ minute: ms, hour: ms, day: ms, month: ms, week: ms.optional() });
const poolHeader = z.object({
  current: keyIdSchema.nullable(),
  servedInTurn: z.number().int().nonnegative(),
  poolWindow: counter.nullable(),
  throttle: block.nullable(),
  history: z.array(counter).default([]),
  windowStarts: windowStartsSchema.optional(),
  seq: z.object({ used: z.number().int().nonnegative(), seen: z.number().int().nonnegative() }).optional(),
  upstreamSync: upstreamSync.nullable().optional(),
  pins: z.record(z.string().max(256), z.tuple([keyIdSchema, ms]).nullable()).optional(),
  apps: ledgers.optional(),
  activity: z
    .object({
      minutes: z.array(z.array(z.number().finite().nonnegative())),
      hours: z.array(z.array(z.number().finite().nonnegative())),
    })
    .optional(),
  // Taken as it is (zod would copy 100,000 entries to check them as unknowns): each is read below.
  keys: z.custom<Record<string, unknown>>(
    (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
    'expected an object of keys',
  ),
});
/** The latest time a Date holds (ms): a savedAt past it, or before 1970, is no time at all. */
const LATEST_TIME = 8.64e15;
const fileHeader = z.object({
  version: z.number().int(),
  savedAt: z.number().min(0, 'is not a time (before 1970)').max(LATEST_TIME, 'is not a time (past the year 275760)'),
  seq: z.number().int().nonnegative().default(0),
  pools: z.record(z.string(), z.unknown()),
});

function issueText(error: z.ZodError): string {
  const first = error.issues[0];
  return first ? `${first.path.join('.') || '(root)'}: ${first.message}` : 'invalid';
}

/**
 * Applies a journal entry (same shape as a state file, holding only the keys that changed) over
 * a state: pool headers are replaced, keys merged.
 */
export function applyJournalEntry(base: StateFile, entry: StateFile): StateFile {
  const pools = { ...base.pools };
  for (const [name, p] of Object.entries(entry.pools)) {
    const prior = pools[name];
    pools[name] = prior ? { ...p, pins: { ...prior.pins, ...p.pins }, keys: { ...prior.keys, ...p.keys } } : p;
  }
  return { version: base.version, savedAt: entry.savedAt, seq: entry.seq, pools };
}

/**
 * Parses a state file. Throws CorruptStateError when the file as a whole is unusable; a bad pool
 * or key entry is dropped and reported in `dropped` instead, so one bad entry costs only itself.
 */
export function deserializeState(text: string, now = Date.now()): { state: StateFile; dropped: string[] } {
  let raw: unknown;
  try {
    raw = parseStateText(text); // key entries kept as text, parsed one at a time below (keyEntry)
  } catch (err) {
    throw new CorruptStateError(`not valid JSON (${(err as Error).message})`);
  }
  return readState(raw, now);
}

/**
 * deserializeState for a value already parsed from JSON (an imported state in a request body).
 * `now` is what its times are judged against (plausible.ts).
 */
export function readState(raw: unknown, now = Date.now()): { state: StateFile; dropped: string[] } {
  if (typeof raw === 'object' && raw !== null && !['version', 'savedAt', 'pools'].some((f) => f in raw))
    throw new ForeignStateError(Array.isArray(raw) ? [] : Object.keys(raw).map((k) => JSON.stringify(k.slice(0, 40))));
  const header = fileHeader.safeParse(raw);
  if (!header.success) throw new CorruptStateError(`not a Keywarden state file (${issueText(header.error)})`);
  const version = header.data.version;
  if (!READABLE_VERSIONS.includes(version)) {
    throw new CorruptStateError(
      `unsupported state version ${version} (this server reads ${READABLE_VERSIONS.join(' and ')})`,
    );
  }
  const dropped: string[] = [];
  const pools: Record<string, PoolState> = {};
  for (const [name, rawPool] of Object.entries(header.data.pools)) {
    const pool = poolHeader.safeParse(rawPool);
    if (!pool.success) {
      dropped.push(`pool ${name}: ${issueText(pool.error)}; its entry dropped`);
      continue;
    }
    const keys: Record<string, KeyState> = {};
    const windowStarts = pool.data.windowStarts;
    const starts = windowStarts ? WINDOW_KINDS.map((kind) => windowStarts[kind]) : undefined;
    const entries = pool.data.keys;
    // One entry at a time (no array of a million pairs), each parsed only now (lazy-json.ts).
    for (const keyId in entries) {
      if (!Object.hasOwn(entries, keyId)) continue;
      const rawKey = keyEntry(entries[keyId]);
      if (!KEY_ID.test(keyId)) {
        dropped.push(`pool ${name}, key entry ${JSON.stringify(keyId.slice(0, 16))}: not a keyId; dropped`);
        continue;
      }
      if (version === 1) {
        const key = keyState.safeParse(rawKey);
        if (key.success)
          keys[keyId] = key.data as KeyState; // format 1: already the in-memory shape
        else dropped.push(`pool ${name}, key ${keyId}: ${issueText(key.error)}; its entry dropped`);
        continue;
      }
      // Format 2, the one written, is read by hand straight into a KeyState (key-reader.ts); zod
      // only says why an entry is refused (key-reader.test.ts holds the two to the same answers).
      const key = starts ? readCompactKey(rawKey, starts) : null;
      if (key) {
        keys[keyId] = key as unknown as KeyState;
        continue;
      }
      const why = compactKeyState.safeParse(rawKey);
      dropped.push(
        `pool ${name}, key ${keyId}: ` +
          (why.success
            ? starts
              ? 'not a key entry this server reads; its entry dropped'
              : "counts without the pool's windowStarts; its entry dropped"
            : `${issueText(why.error)}; its entry dropped`),
      );
    }
    const { windowStarts: _starts, ...poolFields } = pool.data;
    pools[name] = { ...poolFields, keys };
  }
  dropped.push(...clearImplausible(pools, now));
  return { state: { version, savedAt: header.data.savedAt, seq: header.data.seq, pools }, dropped };
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
 * deserializeState, it gives the pool's snapshot as of `now` (counts of windows that ended read
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
