import type { Handout } from './pools/contract.js';

/**
 * Errors that carry their HTTP meaning. Thrown by handlers and middleware, mapped to
 * `{ error, message, ...extra }` in one place (http/app.ts); anything else is a 500 with no details.
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const unknownPool = (pool: string) =>
  new HttpError(404, 'unknown_pool', `no pool named ${JSON.stringify(pool.slice(0, 64))}`);

export const badRequest = (code: string, message: string) => new HttpError(400, code, message);

/** 503/429 with the seconds to wait, also as a Retry-After header when known. */
export function unavailable(status: 429 | 503, code: string, message: string, retryAfterMs: number | null): HttpError {
  const retryAfter = retryAfterMs === null ? null : Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new HttpError(
    status,
    code,
    message,
    { retryAfter },
    retryAfter === null ? {} : { 'Retry-After': String(retryAfter) },
  );
}

/** Why a pool handed out no key, as the caller hears it: the handout route and the proxy alike. */
export function noKeyError(pool: string, result: Handout & { ok: false }, app?: string): HttpError {
  switch (result.reason) {
    case 'app_budget_exhausted':
      return unavailable(
        429,
        'app_budget_exhausted',
        `app ${app ?? '(unnamed)'} has spent its ${result.window} budget of ${result.limit} in pool ${pool}`,
        result.retryAfterMs,
      );
    case 'no_key_available':
      return unavailable(503, 'no_key_available', `pool ${pool} has no usable key right now`, result.retryAfterMs);
    case 'pool_rate_limited':
      return unavailable(429, 'pool_rate_limited', `pool ${pool} reached its poolPerMinute limit`, result.retryAfterMs);
    case 'pool_throttled':
      return unavailable(
        429,
        'pool_throttled',
        `pool ${pool} is throttled upstream (many keys reported 429 at once)`,
        result.retryAfterMs,
      );
  }
}
