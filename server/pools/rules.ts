/**
 * Pure rules of key health: how an upstream answer is classified and how long a key sits out.
 * The pool applies them; nothing here reads a clock.
 */

export type Outcome = 'ok' | 'rate_limited' | 'exhausted' | 'invalid' | 'error';
export const OUTCOMES: readonly Outcome[] = ['ok', 'rate_limited', 'exhausted', 'invalid', 'error'];

/** First rung of the backoff ladder; each further rung doubles, up to the pool's maxBackoff. */
export const BASE_BACKOFF_MS = 60_000;

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

/** Length of the block on rung `level` (0-based) of the ladder. */
export function backoffMs(level: number, maxBackoffMs: number): number {
  return Math.min(BASE_BACKOFF_MS * 2 ** Math.min(level, 30), maxBackoffMs);
}

/** Failure timestamps still inside the window that ends at `nowMs`. */
export function recentFailures(failures: readonly number[], nowMs: number, windowMs: number): number[] {
  return failures.filter((t) => t > nowMs - windowMs && t <= nowMs);
}
