import { z } from 'zod';
import type { CreditWindows, Credits } from '../../shared/stats.js';
import type { UpstreamCheck } from '../pools/contract.js';
import type { CreditWindow, UpstreamFinding } from '../pools/rules.js';

/**
 * Reading Kindwise's answers (plant.id, crop.health). Pure: an answer in, a verdict out, so
 * every case is tested without a network.
 */

/** What one usage_info request came back with: an HTTP answer, or why there was none. */
export type UsageAnswer = { status: number; body: string } | { error: string };

/** Longest first: a key out in several windows returns when the longest of them resets. */
const WINDOWS_LONGEST_FIRST: readonly CreditWindow[] = ['total', 'month', 'week', 'day'];

/**
 * A count of credits as usage_info should send it: a whole number from 0 below 2^53. Anything
 * else (-5, 1.8e308, "12") is read as unknown, like a window the plan does not have, and noted
 * (`ignored`), so an absurd answer neither passes for a plan nor locks a key out.
 */
const count = z.unknown().optional();
const windows = z.object({ day: count, week: count, month: count, total: count }).partial().nullable().optional();
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const usageInfo = z.object({
  active: z.boolean(),
  credit_limits: windows,
  used: windows,
  remaining: windows,
  can_use_credits: z.object({ value: z.boolean(), reason: z.string().nullable().optional() }).nullable().optional(),
});

function creditWindows(w: z.infer<typeof windows>, field: string, ignored: string[]): CreditWindows {
  const out: CreditWindows = { day: null, week: null, month: null, total: null };
  for (const window of ['day', 'week', 'month', 'total'] as const) {
    const v = w?.[window];
    if (isCount(v)) out[window] = v;
    else if (v !== null && v !== undefined)
      ignored.push(`${field}.${window} ${typeof v === 'number' ? String(v) : JSON.stringify(v)}`);
  }
  return out;
}

/** The sentence of an error answer: Kindwise sends a JSON string; others send {detail} or {message}. */
export function sentenceOf(body: string, status: number): string {
  let text: string | null = null;
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === 'string') text = parsed;
    else if (parsed && typeof parsed === 'object') {
      const o = parsed as Record<string, unknown>;
      const v = o.detail ?? o.message ?? o.error;
      if (typeof v === 'string') text = v;
    }
  } catch {
    text = body.trim() || null;
  }
  const line = (text ?? '').replace(/\s+/gu, ' ').trim();
  return line === '' ? `HTTP ${status}` : line.length > 200 ? `${line.slice(0, 199)}…` : line;
}

/**
 * The window a credit-limit sentence names: "… reached its day credit limit (100)." → day;
 * "… does not have sufficient number of available credits." → total; null when it names none.
 */
export function windowNamed(sentence: string): CreditWindow | null {
  const m = /\b(day|week|month)\b[^.]*\blimit/iu.exec(sentence);
  if (m) return m[1]!.toLowerCase() as CreditWindow;
  if (/available credits|credits? (left|remaining)|total credit/iu.test(sentence)) return 'total';
  return null;
}

/**
 * The window a key that cannot use credits waits for: the longest with nothing left, else the one its
 * reason names, else total (until a sync).
 */
function exhaustedWindow(remaining: CreditWindows, reason: string): CreditWindow {
  for (const w of WINDOWS_LONGEST_FIRST) if (remaining[w] !== null && remaining[w]! <= 0) return w;
  return windowNamed(reason) ?? 'total';
}

/**
 * What a usage_info answer says of key `keyId`: 401/403 or `active: false` → invalid;
 * `can_use_credits.value: false` → exhausted in the window out of credits; any other 200 →
 * fine, with its credits. No answer, a 5xx, a 429 or a 200 that is not usage_info is not a
 * verdict: the check did not reach the upstream, and no key changes.
 */
export function readUsageAnswer(keyId: string, answer: UsageAnswer, now: number): UpstreamCheck {
  if ('error' in answer) return { reached: false, error: answer.error };
  const { status, body } = answer;
  if (status === 401 || status === 403)
    return { reached: true, keyId, finding: { status: 'invalid', reason: sentenceOf(body, status) }, credits: null };
  if (status !== 200) return { reached: false, error: `usage_info answered ${status}: ${sentenceOf(body, status)}` };
  let parsed: z.infer<typeof usageInfo>;
  try {
    parsed = usageInfo.parse(JSON.parse(body));
  } catch {
    return { reached: false, error: 'usage_info answered 200 with a body that is not usage_info' };
  }
  const ignored: string[] = [];
  const credits: Credits = {
    remaining: creditWindows(parsed.remaining, 'remaining', ignored),
    used: creditWindows(parsed.used, 'used', ignored),
    limits: creditWindows(parsed.credit_limits, 'credit_limits', ignored),
    syncedAt: now,
  };
  let finding: UpstreamFinding = null;
  if (!parsed.active) finding = { status: 'invalid', reason: 'inactive' };
  else if (parsed.can_use_credits && !parsed.can_use_credits.value) {
    const reason = parsed.can_use_credits.reason?.trim() || 'cannot use credits';
    finding = { status: 'exhausted', reason, window: exhaustedWindow(credits.remaining, reason) };
  }
  return { reached: true, keyId, finding, credits, ...(ignored.length ? { ignored } : {}) };
}
