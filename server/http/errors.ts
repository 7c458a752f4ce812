import { HttpError } from '../errors.js';

export { badRequest, HttpError, noKeyError, unavailable, unknownPool } from '../errors.js';

export const notFound = (path: string) => new HttpError(404, 'not_found', `no route for ${path.slice(0, 200)}`);

export const unauthorized = () =>
  new HttpError(401, 'unauthorized', 'missing or invalid bearer token', {}, { 'WWW-Authenticate': 'Bearer' });

/** The route exists but not for this method; the router has set the Allow header. */
export const methodNotAllowed = () => new HttpError(405, 'method_not_allowed', 'method not allowed on this route');

export const notImplemented = () => new HttpError(501, 'not_implemented', 'method not implemented');

export const payloadTooLarge = (limitBytes: number) =>
  new HttpError(413, 'payload_too_large', `request body exceeds ${limitBytes} bytes`);
