import type { Counter, KeyState } from '../pools/records.js';
import { isDefault, KEY_FIELDS, type FieldKind, type FieldSpec, type KindTypes } from '../pools/fields.js';
import { WINDOW_KINDS, type WindowKind } from '../pools/windows.js';
import { BUDGET_WINDOWS, type AppLedger } from '../pools/budgets.js';

/**
 * A key's persisted state as its Redis hash, and back: the field codes `pool.lua` and
 * `rules.lua` read. The counters are `t` (total), `lu` (last use) and a start and a count per
 * window (`mS`/`mC`, `hS`/`hC`, …); every other field is the field table's (pools/fields.ts),
 * under its code, encoded by its kind below. The state file's encoding of the same record is
 * `state/format.ts`.
 */

const WINDOW_CODE: Record<WindowKind, string> = { minute: 'm', hour: 'h', day: 'd', month: 'o', week: 'w' };

/**
 * The plan's limits from a key's credits, each in a field of its own, because the script reads
 * them on every handout (rules.lua keyLimits) and a JSON decode there would cost more than it.
 */
const PLAN_CODES = [
  ['pD', 'day'],
  ['pW', 'week'],
  ['pO', 'month'],
  ['pT', 'total'],
] as const;

type Hash = Record<string, string>;

/** How a kind of field, of values T, sits in the hash under a field's code. */
interface KindCodec<T> {
  /** The hash fields a value of this kind writes under `code` (the default writes none). */
  codes(code: string): string[];
  read(h: Hash, code: string): T;
  write(h: Hash, code: string, value: NonNullable<T>): void;
}

const num = (s: string | undefined): number | undefined => (s === undefined ? undefined : Number(s));
const scalar: KindCodec<number | undefined> = {
  codes: (code) => [code],
  read: (h, code) => num(h[code]),
  write: (h, code, value) => void (h[code] = String(value)),
};

const KIND_CODECS: { [K in FieldKind]: KindCodec<KindTypes[K]> } = {
  hold: {
    codes: (code) => [`${code}U`, `${code}R`],
    read: (h, code) =>
      h[`${code}U`] === undefined ? null : { until: Number(h[`${code}U`]), reason: h[`${code}R`] ?? '' },
    write: (h, code, v) => Object.assign(h, { [`${code}U`]: String(v.until), [`${code}R`]: v.reason }),
  },
  disabled: {
    codes: (code) => [`${code}R`, `${code}L`],
    read: (h, code) => {
      const reason = h[`${code}R`];
      return reason === undefined ? null : { reason, lineHash: h[`${code}L`] ?? '' };
    },
    write: (h, code, v) => Object.assign(h, { [`${code}R`]: v.reason, [`${code}L`]: v.lineHash }),
  },
  times: {
    codes: (code) => [code],
    read: (h, code) => (h[code] ? h[code].split(',').map(Number) : []),
    write: (h, code, v) => void (h[code] = v.join(',')),
  },
  level: { ...scalar, read: (h, code) => Number(h[code] ?? 0) },
  probe: {
    codes: (code) => [code],
    read: (h, code) => (h[code] === undefined ? null : h[code] === 'ready' ? 'ready' : Number(h[code])),
    write: (h, code, v) => void (h[code] = String(v)),
  },
  seq: scalar,
  count: scalar,
  time: scalar,
  verdict: {
    codes: (code) => [`${code}S`, `${code}R`, `${code}U`],
    read: (h, code) =>
      h[`${code}S`] === undefined
        ? null
        : {
            status: h[`${code}S`] as 'invalid' | 'exhausted',
            reason: h[`${code}R`] ?? '',
            until: num(h[`${code}U`]) ?? null,
          },
    write: (h, code, v) => {
      Object.assign(h, { [`${code}S`]: v.status, [`${code}R`]: v.reason });
      if (v.until !== null) h[`${code}U`] = String(v.until);
    },
  },
  credits: {
    codes: (code) => [code, ...PLAN_CODES.map(([plan]) => plan)],
    read: (h, code) => (h[code] === undefined ? null : (JSON.parse(h[code]) as KindTypes['credits'])),
    write: (h, code, v) => {
      h[code] = JSON.stringify(v);
      for (const [plan, window] of PLAN_CODES) if (v.limits[window] !== null) h[plan] = String(v.limits[window]);
    },
  },
};

const HASHED = KEY_FIELDS.filter((f) => f.redis !== null) as readonly (FieldSpec & { redis: string })[];

/** Every hash field a key's persisted state may write: what the script may read of it. */
export function keyHashCodes(): string[] {
  const codes = ['t', 'lu', ...WINDOW_KINDS.flatMap((kind) => [`${WINDOW_CODE[kind]}S`, `${WINDOW_CODE[kind]}C`])];
  for (const f of HASHED) codes.push(...(KIND_CODECS[f.kind] as KindCodec<unknown>).codes(f.redis));
  return codes;
}

/** Reads a key's hash into the persisted KeyState shape (the same the state file holds). */
export function keyStateOf(h: Hash): KeyState {
  const windows: KeyState['windows'] = {};
  for (const kind of WINDOW_KINDS) {
    const start = h[`${WINDOW_CODE[kind]}S`];
    if (start !== undefined)
      windows[kind] = { start: Number(start), count: Number(h[`${WINDOW_CODE[kind]}C`] ?? 0) } satisfies Counter;
  }
  const state: Record<string, unknown> = { windows, total: Number(h.t ?? 0), lastUsedAt: num(h.lu) ?? null };
  for (const f of HASHED) {
    const value = (KIND_CODECS[f.kind] as KindCodec<unknown>).read(h, f.redis);
    if (value !== undefined) state[f.name] = value;
  }
  return state as unknown as KeyState;
}

/** A key's persisted state as its Redis hash (the inverse of keyStateOf); retired keys keep their hash too. */
export function hashOf(k: KeyState): Hash {
  const h: Hash = { t: String(k.total) };
  for (const kind of WINDOW_KINDS) {
    const w = k.windows[kind];
    if (w) {
      h[`${WINDOW_CODE[kind]}S`] = String(w.start);
      h[`${WINDOW_CODE[kind]}C`] = String(w.count);
    }
  }
  if (k.lastUsedAt !== null) h.lu = String(k.lastUsedAt);
  const state = k as unknown as Record<string, unknown>;
  for (const f of HASHED) {
    const value = state[f.name];
    if (isDefault(f, value)) continue;
    (KIND_CODECS[f.kind] as KindCodec<unknown>).write(h, f.redis, value as never);
  }
  return h;
}

/** An app's ledger (pools/budgets.ts) as its hash in redis/apps.lua: h, s, ls, and dS/dC, wS/wC, oS/oC. */
export function ledgerHash(l: AppLedger): Hash {
  const h: Hash = { h: String(l.handouts), s: String(l.spent) };
  if (l.lastSeenAt !== null) h.ls = String(l.lastSeenAt);
  for (const kind of BUDGET_WINDOWS) {
    const w = l.windows[kind];
    if (w) Object.assign(h, { [`${WINDOW_CODE[kind]}S`]: String(w.start), [`${WINDOW_CODE[kind]}C`]: String(w.count) });
  }
  return h;
}

export function ledgerOf(h: Hash): AppLedger {
  const windows: AppLedger['windows'] = {};
  for (const kind of BUDGET_WINDOWS) {
    const c = WINDOW_CODE[kind];
    if (h[`${c}S`] !== undefined) windows[kind] = { start: Number(h[`${c}S`]), count: Number(h[`${c}C`] ?? 0) };
  }
  return { handouts: Number(h.h ?? 0), spent: Number(h.s ?? 0), windows, lastSeenAt: num(h.ls) ?? null };
}
