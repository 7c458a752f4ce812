import type { Credits } from '../../shared/stats.js';

/**
 * A key's record, field by field, described once: this table drives the record the rules read
 * (RuleRecord, records.ts), the state file's schema, reader and writer (state/read-state.ts, format.ts,
 * state/key-reader.ts) and the Redis hash codec (redis/codec.ts). Adding a field is a row here,
 * the rule that uses it and, if the Redis script reads it, the Lua that mirrors that rule; a field
 * of a new kind also needs that kind's encoding in the codecs (their `Record<FieldKind, …>`
 * tables make the compiler ask).
 *
 * Not in the table: the counters (total, lastUsedAt and one count per window of WINDOW_KINDS),
 * which a pool keeps in its number table (records.ts STRIDE) and every encoding writes first.
 */

/** A time-limited state of a key (a block, an exhaustion) and why. */
export interface Hold {
  until: number;
  reason: string;
}

/** An operator's disable: why, and the hash of the key-file line that said it. */
export interface Disabled {
  reason: string;
  lineHash: string;
}

/**
 * The upstream's verdict on a key (an upstream sync): out as `invalid` or `exhausted` until
 * `until` (null: until a sync finds it fine). Kept apart from the holds that reports and
 * operators make, so a sync that finds the key fine lifts only its own.
 */
export interface UpstreamHold {
  status: 'invalid' | 'exhausted';
  reason: string;
  until: number | null;
}

/** The value each kind of field holds; its default (a healthy, new key's) is in KIND_DEFAULTS. */
export interface KindTypes {
  hold: Hold | null;
  disabled: Disabled | null;
  /** Timestamps, oldest first. */
  times: number[];
  level: number;
  /** 'ready': the next handout is the single probe; a time: probe handed out, healthy at that time. */
  probe: 'ready' | number | null;
  /** A whole number, absent until set. */
  seq: number | undefined;
  /** A count of uses, absent until set. */
  count: number | undefined;
  /** A time in ms, absent until set. */
  time: number | undefined;
  verdict: UpstreamHold | null;
  credits: Credits | null;
}
export type FieldKind = keyof KindTypes;

export const KIND_DEFAULTS: { readonly [K in FieldKind]: KindTypes[K] } = {
  hold: null,
  disabled: null,
  times: Object.freeze([]) as unknown as number[],
  level: 0,
  probe: null,
  seq: undefined,
  count: undefined,
  time: undefined,
  verdict: null,
  credits: null,
};

export interface FieldSpec {
  readonly name: string;
  readonly kind: FieldKind;
  /** Its code in the key's Redis hash (a kind of several parts adds a letter each), or null: not kept there. */
  readonly redis: string | null;
  /** The rules read and change it, so every record (RuleRecord) carries it. */
  readonly rule: boolean;
  /** May be absent from a persisted state (written before the field existed, or it is at its default). */
  readonly optional: boolean;
}

export const KEY_FIELDS = [
  { name: 'block', kind: 'hold', redis: 'b', rule: true, optional: false },
  { name: 'exhausted', kind: 'hold', redis: 'e', rule: true, optional: false },
  { name: 'disabled', kind: 'disabled', redis: 'x', rule: true, optional: false },
  /** Times of recent failures (the backoff's evidence). */
  { name: 'failures', kind: 'times', redis: 'f', rule: true, optional: false },
  { name: 'backoffLevel', kind: 'level', redis: 'bl', rule: true, optional: false },
  { name: 'probe', kind: 'probe', redis: 'pr', rule: true, optional: false },
  /** The upstream's verdict (absent: none). */
  { name: 'upstreamHold', kind: 'verdict', redis: 'u', rule: true, optional: true },
  /** The upstream's last word on the key's credits, its plan's limits among them (absent: never synced). */
  { name: 'credits', kind: 'credits', redis: 'uc', rule: true, optional: true },
  /**
   * Least-recently-used order: the pool's handout sequence number at the key's last handout, or,
   * for a key never handed out, NEVER_USED_SEQ_BASE plus the order it was first seen in.
   * Absent in state written before it was kept (then it is derived from lastUsedAt).
   */
  { name: 'useSeq', kind: 'seq', redis: 'us', rule: false, optional: true },
  /**
   * The uses of this key a durable save already counts as handed out: `total` plus reserved
   * headroom. A pool that keeps reservations never serves past it without saving a higher one
   * first, so after a crash (kill -9) the uses since the last save are at most this: loading
   * counts them as used, and a crash wastes at most the headroom, never over-issues. Absent, or
   * equal to `total`, after a clean stop. Redis commits every handout, so it keeps none.
   */
  { name: 'reserved', kind: 'count', redis: null, rule: false, optional: true },
  /** Set while the key is not in the key file; its record is kept so a re-added key resumes. */
  { name: 'removedAt', kind: 'time', redis: null, rule: false, optional: true },
] as const satisfies readonly FieldSpec[];

type Row = (typeof KEY_FIELDS)[number];
type ValueOf<R extends Row> = KindTypes[R['kind']];

/** The table's fields as a persisted state holds them (optional ones may be absent). */
export type KeyFields = { [R in Row as R['optional'] extends true ? never : R['name']]: ValueOf<R> } & {
  [R in Row as R['optional'] extends true ? R['name'] : never]?: ValueOf<R>;
};
/** The fields every record carries for the rules, each always present (at its default when unset). */
export type RuleFields = { [R in Row as R['rule'] extends true ? R['name'] : never]: ValueOf<R> };
export type FieldName = Row['name'];

export const RULE_FIELDS: readonly FieldSpec[] = KEY_FIELDS.filter((f) => f.rule);

/** Whether `value` is the field's default, so an encoding may leave it out. */
export function isDefault(field: FieldSpec, value: unknown): boolean {
  const d = KIND_DEFAULTS[field.kind];
  if (value === undefined || value === d) return true;
  return Array.isArray(d) && Array.isArray(value) && value.length === 0;
}

/** A field's value as a record keeps it: its default when absent; lists copied, so none is shared. */
export function recordValue(field: FieldSpec, value: unknown): unknown {
  if (value === undefined) value = KIND_DEFAULTS[field.kind];
  return Array.isArray(value) ? [...(value as unknown[])] : value;
}
