/**
 * Errors that carry their HTTP meaning. Thrown by handlers and middleware, mapped to
 * `{ error, message, ...extra }` in one place (app.ts); anything else is a 500 with no details.
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

export const notFound = (path: string) => new HttpError(404, 'not_found', `no route for ${path.slice(0, 200)}`);

export const unauthorized = () =>
  new HttpError(401, 'unauthorized', 'missing or invalid bearer token', {}, { 'WWW-Authenticate': 'Bearer' });

/** The route exists but not for this method; the router has set the Allow header. */
export const methodNotAllowed = () => new HttpError(405, 'method_not_allowed', 'method not allowed on this route');

export const notImplemented = () => new HttpError(501, 'not_implemented', 'method not implemented');

export const badRequest = (code: string, message: string) => new HttpError(400, code, message);

export const payloadTooLarge = (limitBytes: number) =>
  new HttpError(413, 'payload_too_large', `request body exceeds ${limitBytes} bytes`);

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
