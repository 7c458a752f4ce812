import { z } from 'zod';
import { KEY_FIELDS, recordValue, type FieldKind, type KindTypes } from '../pools/fields.js';
import type { KeyState, PoolState } from '../pools/records.js';
import { WINDOW_KINDS } from '../pools/windows.js';
import { CorruptStateError, ForeignStateError } from './errors.js';
import type { StateFile } from './format.js';
import { readCompactKey } from './key-reader.js';
import { clearImplausible } from './plausible.js';

/**
 * What a state file's JSON means: the envelope, each pool's header and each key entry checked,
 * a bad pool or key entry dropped with a sentence saying why (the rest kept), implausible times
 * cleared. Both ways of reading a file come here: its text streamed through state-parser.ts, one
 * key entry at a time, and a value parsed whole (an imported state, a file laid out otherwise).
 */

/** The versions of the state file format this server reads (format.ts STATE_VERSION writes). */
const READABLE_VERSIONS = [1, 2];

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

export interface Envelope {
  version: number;
  savedAt: number;
  seq: number;
  pools: Record<string, unknown>;
}

/**
 * A state file's envelope (version, savedAt, seq and the pools' raw entries), checked. Throws
 * ForeignStateError for another program's JSON, CorruptStateError for no state file at all.
 */
export function readEnvelope(raw: unknown): Envelope {
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
  return header.data;
}

/**
 * One pool's entry, read a key entry at a time: its header is checked first (a bad one drops the
 * pool, and its keys are not read), then each key entry in turn. Drops go to `dropped`.
 */
export class PoolReader {
  private readonly header: z.infer<typeof poolHeader> | null = null;
  private readonly starts: Array<number | undefined> | undefined;
  private readonly keys: Record<string, KeyState> = {};

  constructor(
    private readonly name: string,
    private readonly version: number,
    /** The pool's entry; its `keys` need only be an object: they come through key(). */
    rawPool: unknown,
    private readonly dropped: string[],
  ) {
    const pool = poolHeader.safeParse(rawPool);
    if (!pool.success) {
      dropped.push(`pool ${name}: ${issueText(pool.error)}; its entry dropped`);
      return;
    }
    this.header = pool.data;
    const windowStarts = pool.data.windowStarts;
    this.starts = windowStarts ? WINDOW_KINDS.map((kind) => windowStarts[kind]) : undefined;
  }

  /** False when the pool's header was refused: its keys need not be read. */
  get readable(): boolean {
    return this.header !== null;
  }

  /** Whether a key entry of this keyId was kept. */
  has(keyId: string): boolean {
    return Object.hasOwn(this.keys, keyId);
  }

  /** Reads one key entry (parsed JSON, or its text when that was not JSON); false when dropped. */
  key(keyId: string, raw: unknown): boolean {
    if (!this.header) return false;
    const { name, keys, dropped } = this;
    if (!KEY_ID.test(keyId)) {
      dropped.push(`pool ${name}, key entry ${JSON.stringify(keyId.slice(0, 16))}: not a keyId; dropped`);
      return false;
    }
    if (this.version === 1) {
      const key = keyState.safeParse(raw);
      if (key.success)
        keys[keyId] = key.data as KeyState; // format 1: already the in-memory shape
      else dropped.push(`pool ${name}, key ${keyId}: ${issueText(key.error)}; its entry dropped`);
      return key.success;
    }
    // Format 2, the one written, is read by hand straight into a KeyState (key-reader.ts); zod
    // only says why an entry is refused (key-reader.test.ts holds the two to the same answers).
    const starts = this.starts;
    const key = starts ? readCompactKey(raw, starts) : null;
    if (key) {
      keys[keyId] = key as unknown as KeyState;
      return true;
    }
    const why = compactKeyState.safeParse(raw);
    dropped.push(
      `pool ${name}, key ${keyId}: ` +
        (why.success
          ? starts
            ? 'not a key entry this server reads; its entry dropped'
            : "counts without the pool's windowStarts; its entry dropped"
          : `${issueText(why.error)}; its entry dropped`),
    );
    return false;
  }

  /** The pool's state, or null when its header was refused. */
  finish(): PoolState | null {
    if (!this.header) return null;
    const { windowStarts: _starts, keys: _keys, ...poolFields } = this.header;
    return { ...poolFields, keys: this.keys };
  }
}

/**
 * A state file's value parsed whole by JSON.parse (an imported state in a request body, a file
 * the streaming reader does not take). `now` is what its times are judged against (plausible.ts).
 */
export function readState(raw: unknown, now = Date.now()): { state: StateFile; dropped: string[] } {
  const envelope = readEnvelope(raw);
  const dropped: string[] = [];
  const pools: Record<string, PoolState> = {};
  for (const [name, rawPool] of Object.entries(envelope.pools)) {
    const reader = new PoolReader(name, envelope.version, rawPool, dropped);
    if (reader.readable) {
      const entries = (rawPool as { keys: Record<string, unknown> }).keys;
      // One entry at a time, no array of a million pairs.
      for (const keyId in entries) if (Object.hasOwn(entries, keyId)) reader.key(keyId, entries[keyId]);
    }
    const pool = reader.finish();
    if (pool) pools[name] = pool;
  }
  return finishState(envelope, pools, dropped, now);
}

/** The state read: implausible times cleared (plausible.ts), said in `dropped`. */
export function finishState(
  envelope: Envelope,
  pools: Record<string, PoolState>,
  dropped: string[],
  now: number,
): { state: StateFile; dropped: string[] } {
  dropped.push(...clearImplausible(pools, now));
  return { state: { version: envelope.version, savedAt: envelope.savedAt, seq: envelope.seq, pools }, dropped };
}
