/**
 * The rulebook: how a key's state answers "can it be handed out, and until when", and how a
 * report, a handout or an admin action changes it. Pure: every function takes the record, the
 * policy and `now`; none reads a clock or touches an index.
 *
 * `redis/rules.lua` mirrors the functions marked "Mirrored" name for name, so the Redis backend
 * applies the same rules inside Redis; test/server/pools/rules-both-stores.test.ts runs one suite
 * on both and test/server/pools/differential.test.ts compares them on random operations. The
 * unmarked functions read a request before either engine sees it (their results are arguments
 * of both).
 */
import type { Credits, KeyStatus } from '../../shared/stats.js';
import { BASE_BACKOFF_MS, exhaustedUntil, LIMIT_WINDOWS, type Limits, type PoolPolicy } from './policy.js';
import type { RuleRecord, UpstreamHold } from './records.js';
import { WINDOW_KINDS, type WindowClock, type WindowKind } from './windows.js';

export type Outcome = 'ok' | 'rate_limited' | 'exhausted' | 'invalid' | 'error';
export const OUTCOMES: readonly Outcome[] = ['ok', 'rate_limited', 'exhausted', 'invalid', 'error'];

export interface ReportInput {
  keyId: string;
  outcome?: Outcome;
  /** Upstream HTTP status; classified when no outcome is given. */
  status?: number;
  retryAfterSec?: number;
}

/** A report as both engines apply it. */
export interface ReadReport {
  outcome: Outcome;
  retryAfterMs: number | null;
  label: string;
  /** When an `exhausted` report lets the key back. */
  exhaustedUntil: number;
  /** The disable reason an `invalid` report records. */
  invalidReason: string;
}

export interface Evaluation {
  status: KeyStatus;
  reason: string | null;
  until: number | null;
  usable: boolean;
}

const AVAILABLE: Evaluation = { status: 'available', reason: null, until: null, usable: true };

/** A pool's limits looked up once: quotaHit and limitsLeft run on every handout. */
export interface CompiledLimits {
  total: number | undefined;
  windows: Array<{ name: keyof Limits; kind: WindowKind; k: number; limit: number }>;
  /** Keys are also held to their plan's credit limits (PoolPolicy.upstreamLimits). */
  fromUpstream: boolean;
  /** A key's limits by its credits object (keyLimits), made once per sync of the key. */
  perKey: WeakMap<Credits, CompiledLimits>;
}

export function compileLimits(limits: Limits, fromUpstream = false): CompiledLimits {
  const windows: CompiledLimits['windows'] = [];
  for (const [name, kind] of LIMIT_WINDOWS) {
    const limit = limits[name];
    if (limit !== undefined) windows.push({ name, kind, k: WINDOW_KINDS.indexOf(kind), limit });
  }
  return { total: limits.total, windows, fromUpstream, perKey: new WeakMap() };
}

/** The pool limit each credit window of the upstream's caps (day, week, month; total is `total`). */
const CREDIT_LIMITS = [
  ['day', 'perDay'],
  ['week', 'perWeek'],
  ['month', 'perMonth'],
] as const;

// ---------------------------------------------------------------- reading a request

/**
 * Classifies an upstream HTTP status: 401/403 → invalid, 402 → exhausted (payment/credits),
 * 429 → rate_limited, 408 and 5xx → error; any other status shows the key itself works → ok.
 */
export function classifyStatus(status: number): Outcome {
  if (status === 401 || status === 403) return 'invalid';
  if (status === 402) return 'exhausted';
  if (status === 429) return 'rate_limited';
  if (status === 408 || status >= 500) return 'error';
  return 'ok';
}

/** A report as both engines apply it. */
export function readReport(input: ReportInput, policy: PoolPolicy, clock: WindowClock, now: number): ReadReport {
  const outcome = input.outcome ?? classifyStatus(input.status!);
  return {
    outcome,
    retryAfterMs: input.retryAfterSec === undefined ? null : Math.round(input.retryAfterSec * 1000),
    label: input.status !== undefined ? `reported ${input.status}` : `reported ${outcome}`,
    exhaustedUntil: exhaustedUntil(policy, clock, now),
    invalidReason: input.status !== undefined ? `invalid: ${input.status}` : 'reported invalid',
  };
}

/** The windows an upstream counts credits in; `total` never resets. */
export type CreditWindow = 'day' | 'week' | 'month' | 'total';

/** What an upstream check found wrong with a key (null: nothing). */
export type UpstreamFinding =
  { status: 'invalid'; reason: string } | { status: 'exhausted'; reason: string; window: CreditWindow } | null;

/**
 * The hold an upstream finding puts on a key: an exhaustion lasts until the named window resets
 * in the pool's zone (day: next midnight; week: next Monday; month: the 1st), a `total` one and
 * an invalid key until a sync finds the key fine.
 */
export function upstreamHoldFor(finding: UpstreamFinding, clock: WindowClock, now: number): UpstreamHold | null {
  if (finding === null) return null;
  const reason = `upstream: ${finding.reason}`;
  if (finding.status === 'invalid') return { status: 'invalid', reason, until: null };
  return {
    status: 'exhausted',
    reason,
    until: finding.window === 'total' ? null : clock.bounds(finding.window, now).endMs,
  };
}

// ---------------------------------------------------------------- mirrored in redis/rules.lua

/** Mirrored. Length of the block on rung `level` (0-based) of the backoff ladder. */
export function backoffMs(level: number, maxBackoffMs: number): number {
  return Math.min(BASE_BACKOFF_MS * 2 ** Math.min(level, 30), maxBackoffMs);
}

/** Mirrored. Failure timestamps still inside the window that ends at `nowMs`. */
export function recentFailures(failures: readonly number[], nowMs: number, windowMs: number): number[] {
  return failures.filter((t) => t > nowMs - windowMs && t <= nowMs);
}

/**
 * Mirrored. Time-based transitions: a block that ended starts a probe; a probe that ran its time
 * out is healthy; an exhaustion that ended is over, the upstream's too. True when anything changed.
 */
export function settle(rec: RuleRecord, now: number): boolean {
  let changed = false;
  if (rec.block && now >= rec.block.until) {
    rec.block = null;
    rec.probe = 'ready';
    changed = true;
  }
  if (typeof rec.probe === 'number' && now >= rec.probe) {
    rec.probe = null;
    rec.backoffLevel = 0;
    changed = true;
  }
  if (rec.exhausted && now >= rec.exhausted.until) {
    rec.exhausted = null;
    changed = true;
  }
  if (rec.upstreamHold && rec.upstreamHold.until !== null && now >= rec.upstreamHold.until) {
    rec.upstreamHold = null;
    changed = true;
  }
  return changed;
}

/**
 * Mirrored. The limits a key is held to: the pool's, and where the pool takes them from its
 * upstream, each window also capped by the key's plan as the last sync told it (`credits.limits`).
 */
export function keyLimits(rec: RuleRecord, limits: CompiledLimits): CompiledLimits {
  const plan = limits.fromUpstream ? rec.credits?.limits : undefined;
  if (!plan) return limits;
  const known = limits.perKey.get(rec.credits!);
  if (known) return known;
  const merged: Limits = {};
  for (const { name, limit } of limits.windows) merged[name] = limit;
  if (limits.total !== undefined) merged.total = limits.total;
  for (const [window, name] of CREDIT_LIMITS) {
    const l = plan[window];
    if (l !== null && Number.isFinite(l) && l >= 0) merged[name] = Math.min(merged[name] ?? Infinity, Math.floor(l));
  }
  if (plan.total !== null && Number.isFinite(plan.total) && plan.total >= 0)
    merged.total = Math.min(merged.total ?? Infinity, Math.floor(plan.total));
  const compiled = compileLimits(merged);
  limits.perKey.set(rec.credits!, compiled);
  return compiled;
}

/** Mirrored. A key's count in the current window of `kind` (index `k` in WINDOW_KINDS). */
export function count(rec: RuleRecord, k: number, clock: WindowClock, now: number): number {
  return rec.countIn(k, clock.bounds(WINDOW_KINDS[k]!, now).startMs);
}

/** Mirrored. The limits a key is at, with when all of them have reset (null: `total`, never). */
export function quotaHit(
  rec: RuleRecord,
  poolLimits: CompiledLimits,
  clock: WindowClock,
  now: number,
): { reason: string; until: number | null } | null {
  const limits = keyLimits(rec, poolLimits);
  let reason: string | null = null;
  let until: number | null = 0;
  if (limits.total !== undefined && rec.total >= limits.total) {
    reason = `quota: total ${rec.total}/${limits.total}`;
    until = null;
  }
  for (const { name, kind, k, limit } of limits.windows) {
    const used = count(rec, k, clock, now);
    if (used >= limit) {
      reason ??= `quota: ${name} ${used}/${limit}`;
      if (until !== null) until = Math.max(until, clock.bounds(kind, now).endMs);
    }
  }
  return reason === null ? null : { reason, until };
}

/** Mirrored. Handouts left before a limit stops the key; null when it has none. */
export function limitsLeft(
  rec: RuleRecord,
  poolLimits: CompiledLimits,
  clock: WindowClock,
  now: number,
): number | null {
  const limits = keyLimits(rec, poolLimits);
  let left: number | null = limits.total === undefined ? null : limits.total - rec.total;
  for (const { k, limit } of limits.windows) {
    const l = limit - count(rec, k, clock, now);
    left = left === null ? l : Math.min(left, l);
  }
  return left === null ? null : Math.max(0, left);
}

/** Mirrored. Status of a settled record at `now`. */
export function evaluate(rec: RuleRecord, limits: CompiledLimits, clock: WindowClock, now: number): Evaluation {
  if (rec.disabled) return { status: 'disabled', reason: rec.disabled.reason, until: null, usable: false };
  if (rec.expiresAt !== null && now >= rec.expiresAt)
    return { status: 'expired', reason: 'expired', until: null, usable: false };
  if (rec.upstreamHold)
    return {
      status: rec.upstreamHold.status,
      reason: rec.upstreamHold.reason,
      until: rec.upstreamHold.until,
      usable: false,
    };
  if (rec.block) return { status: 'blocked', reason: rec.block.reason, until: rec.block.until, usable: false };
  if (rec.exhausted)
    return { status: 'exhausted', reason: rec.exhausted.reason, until: rec.exhausted.until, usable: false };
  const quota = quotaHit(rec, limits, clock, now);
  if (quota) return { status: 'exhausted', reason: quota.reason, until: quota.until, usable: false };
  if (rec.probe === 'ready') return { status: 'probing', reason: 'probing after block', until: null, usable: true };
  if (typeof rec.probe === 'number')
    return { status: 'probing', reason: 'probe in flight', until: rec.probe, usable: false };
  return AVAILABLE;
}

/**
 * Mirrored. How many uses a handout of `want` grants: all of them, cut to what the key's limits
 * (`left`) and the pool cap (`capLeft`) allow, and to one for a key on probation.
 */
export function grant(want: number, left: number | null, capLeft: number | null, probing: boolean): number {
  let granted = Math.max(1, Math.floor(want));
  if (granted > 1) {
    if (left !== null) granted = Math.min(granted, left);
    if (capLeft !== null) granted = Math.min(granted, capLeft);
    if (probing) granted = 1;
  }
  return granted;
}

/**
 * Mirrored. The uses a lease asks for (redis/leases.ts): `block`, cut to a quarter of what the key's
 * limits and the app's budget have left, so other instances still find uses; never below `want`.
 */
export function leaseSize(want: number, block: number, left: number | null, budgetLeft: number | null): number {
  const quarter = (n: number | null) => (n === null ? Infinity : Math.ceil(n / 4));
  return Math.max(want, Math.min(block, quarter(left), quarter(budgetLeft)));
}

/** Mirrored. What a handout tells the caller is left: the key's limits, and under round-robin also its turn. */
export function remainingAfter(
  left: number | null,
  policy: PoolPolicy,
  isCurrent: boolean,
  servedInTurn: number,
): number | null {
  if (policy.strategy !== 'round-robin' || !isCurrent) return left;
  const turnLeft = Math.max(0, policy.rotateEvery - servedInTurn);
  return left === null ? turnLeft : Math.min(turnLeft, left);
}

/** Mirrored. Takes a key out for `forMs`; `climb` moves it a rung up the backoff ladder. */
export function blockKey(rec: RuleRecord, now: number, forMs: number, reason: string, climb: boolean): void {
  rec.probe = null;
  rec.block = { until: now + Math.max(0, forMs), reason };
  if (climb) rec.backoffLevel++;
}

/**
 * Mirrored. Applies a report to its (settled) key, all but the pool-wide part of a 429 (see
 * isCorrelated): ok clears failures, backoff and probation; rate_limited blocks for Retry-After
 * or the next rung; exhausted keeps the key out until `exhaustedUntil`; invalid disables it until
 * its line changes; error counts a failure and blocks at maxFailures (or at once while probing).
 */
export function applyReport(rec: RuleRecord, r: ReadReport, policy: PoolPolicy, now: number): void {
  const maxBackoffMs = policy.maxBackoffSec * 1000;
  switch (r.outcome) {
    case 'ok':
      rec.failures = [];
      rec.backoffLevel = 0;
      rec.probe = null;
      break;
    case 'rate_limited':
      blockKey(rec, now, r.retryAfterMs ?? backoffMs(rec.backoffLevel, maxBackoffMs), r.label, r.retryAfterMs === null);
      break;
    case 'exhausted':
      rec.probe = null;
      rec.exhausted = {
        until: r.exhaustedUntil,
        reason: r.label === 'reported exhausted' ? r.label : `${r.label} (quota)`,
      };
      break;
    case 'invalid':
      rec.probe = null;
      rec.disabled = { reason: r.invalidReason, lineHash: rec.lineHash };
      break;
    case 'error': {
      if (typeof rec.probe === 'number') {
        blockKey(rec, now, backoffMs(rec.backoffLevel, maxBackoffMs), `${r.label} while probing`, true);
        break;
      }
      const failures = [...recentFailures(rec.failures, now, policy.failureWindowSec * 1000), now];
      if (failures.length >= policy.maxFailures) {
        rec.failures = [];
        blockKey(
          rec,
          now,
          backoffMs(rec.backoffLevel, maxBackoffMs),
          `${failures.length} errors in ${policy.failureWindowSec}s (last: ${r.label})`,
          true,
        );
      } else rec.failures = failures;
      break;
    }
  }
}

/**
 * Mirrored. Whether `recent` keys reporting 429 within the correlation window, out of a pool of
 * `size`, mean the caller is throttled rather than the keys: more than half, and at least two.
 */
export function isCorrelated(recent: number, size: number): boolean {
  return recent >= 2 && recent * 2 > size;
}

/**
 * Mirrored. Puts the upstream's verdict on a key: a hold takes it out (ending a probe, as a
 * report does), null lifts the hold an earlier sync put on it and nothing else.
 */
export function applyUpstream(rec: RuleRecord, hold: UpstreamHold | null): void {
  if (hold) rec.probe = null;
  rec.upstreamHold = hold;
}

export type AdminAction = 'disable' | 'enable' | 'reset';

/**
 * Mirrored. An operator's action on a key: disable (out until enabled or its line changes),
 * enable (clears disable, block, exhaustion, the upstream's hold until its next sync, probation
 * and failures), reset (zeroes the served
 * counters and clears an exhaustion). The counters' part of reset is the caller's, which knows
 * where they live.
 */
export function applyAdmin(rec: RuleRecord, action: AdminAction, reason: string | null): void {
  switch (action) {
    case 'disable':
      rec.disabled = { reason: reason ?? 'disabled', lineHash: rec.lineHash };
      break;
    case 'enable':
      rec.disabled = null;
      rec.block = null;
      rec.exhausted = null;
      rec.upstreamHold = null;
      rec.probe = null;
      rec.failures = [];
      rec.backoffLevel = 0;
      break;
    case 'reset':
      rec.total = 0;
      rec.exhausted = null;
      break;
  }
}
