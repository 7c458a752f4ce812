import type { CreditWindow } from '../pools/rules.js';
import type { UpstreamConfig } from './config.js';
import { sentenceOf, windowNamed } from './kindwise.js';

/**
 * What a proxied answer says of the key that made it, and whether the request should go to
 * another key. Pure: the proxy (http/proxy.ts) reads the answer, this decides.
 */
export type AttemptVerdict =
  /** 2xx, 3xx and other 4xx: the key works (a 400 is the caller's fault, not the key's). */
  | { outcome: 'ok' }
  /** 401, 403: the upstream refuses the key. */
  | { outcome: 'invalid'; reason: string }
  /** A Kindwise 429 whose sentence names a credit limit: out until that window resets. */
  | { outcome: 'exhausted'; window: CreditWindow; reason: string }
  /** Any other 429. */
  | { outcome: 'rate_limited'; retryAfterSec: number | null }
  /** 5xx. */
  | { outcome: 'error' };

/** Statuses whose body the verdict (or a later failover) needs, so the proxy reads them whole instead of streaming. */
export function mayFailOver(status: number): boolean {
  return status === 401 || status === 403 || status === 429 || status >= 500;
}

/**
 * Retry-After as seconds: a number of seconds, or an HTTP date (RFC 9110), at most `maxSec` (an
 * upstream's word must not keep a key out for a year); null when absent or unreadable.
 */
export function retryAfterSeconds(header: string | undefined, now: number, maxSec: number): number | null {
  if (header === undefined || header.trim() === '') return null;
  const text = header.trim();
  if (/^\d+$/u.test(text)) return Math.min(Number(text), maxSec);
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.min(maxSec, Math.max(0, Math.ceil((at - now) / 1000)));
}

/**
 * The verdict on an answer of `status`. `body` is read for 401, 403 and 429 (see mayFailOver):
 * Kindwise answers 429 both out of credits ("… reached its day credit limit (100).") and when
 * rate limited, and only the sentence tells them apart.
 */
export function judgeAttempt(
  upstream: UpstreamConfig,
  status: number,
  body: string,
  retryAfter: string | undefined,
  now: number,
  maxRetryAfterSec: number,
): AttemptVerdict {
  if (status === 401 || status === 403) return { outcome: 'invalid', reason: sentenceOf(body, status) };
  if (status === 429) {
    if (upstream.type === 'kindwise') {
      const sentence = sentenceOf(body, status);
      const window = windowNamed(sentence);
      if (window !== null) return { outcome: 'exhausted', window, reason: sentence };
    }
    return { outcome: 'rate_limited', retryAfterSec: retryAfterSeconds(retryAfter, now, maxRetryAfterSec) };
  }
  if (status >= 500) return { outcome: 'error' };
  return { outcome: 'ok' };
}

/** Whether the same request may go to another key after this verdict: the upstream refused the key, not the request. */
export function refusedTheKey(v: AttemptVerdict): boolean {
  return v.outcome === 'invalid' || v.outcome === 'exhausted' || v.outcome === 'rate_limited';
}

/** Methods a second send cannot do twice what the first did (RFC 9110 idempotent methods). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);

/**
 * Whether a request whose attempt failed with a 5xx, a timeout or a reset may be sent again: an
 * idempotent method, or any method where the pool allows it (`proxyRetryPost`: a POST that
 * reached Kindwise may have spent credits).
 */
export function mayResend(method: string, retryPost: boolean): boolean {
  return IDEMPOTENT.has(method) || retryPost;
}

/** Connection errors that happen before a byte of the request was sent: always safe to try again. */
const NOT_SENT = new Set([
  'ECONNREFUSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

export function neverSent(code: string | undefined): boolean {
  return code !== undefined && NOT_SENT.has(code);
}
