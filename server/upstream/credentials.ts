import type { UpstreamConfig } from './config.js';

/**
 * Where an upstream takes its key, for the proxy: the caller's credential is found and removed
 * there, and the pool's key put in. Pure.
 */

/** The request header (lower case) that carries the key, or null when it travels in the query. */
export function keyHeader(upstream: UpstreamConfig): string | null {
  if (upstream.type === 'kindwise') return 'api-key';
  if (upstream.type === 'header') return upstream.header.toLowerCase();
  return null;
}

/**
 * The token a caller sent where the upstream takes its key (an SDK passes the Keywarden token as
 * its api_key): the header's value read through the format (`Bearer {key}` → what follows
 * "Bearer "), or the query parameter. Null when absent.
 */
export function presentedToken(
  upstream: UpstreamConfig,
  headerValue: string | undefined,
  query: URLSearchParams | null,
): string | null {
  if (upstream.type === 'query') return query?.get(upstream.param) ?? null;
  if (headerValue === undefined) return null;
  if (upstream.type === 'kindwise') return headerValue.trim() || null;
  const [before, after] = upstream.format.split('{key}') as [string, string];
  const v = headerValue.trim();
  if (
    v.length < before.length + after.length ||
    !v.toLowerCase().startsWith(before.toLowerCase()) ||
    !v.endsWith(after)
  )
    return null;
  return v.slice(before.length, v.length - after.length).trim() || null;
}

/** The header line that carries `key` to the upstream, or null when it travels in the query. */
export function keyHeaderLine(upstream: UpstreamConfig, key: string): [string, string] | null {
  if (upstream.type === 'kindwise') return ['Api-Key', key];
  if (upstream.type === 'header') return [upstream.header, upstream.format.replace('{key}', key)];
  return null;
}

/**
 * The path and query to send upstream: the caller's, with a query-type upstream's key parameter
 * set to `key` (whatever the caller put there is dropped). The raw query is kept byte for byte
 * otherwise, so signatures over it still hold.
 */
export function upstreamPathAndQuery(upstream: UpstreamConfig, path: string, rawQuery: string, key: string): string {
  if (upstream.type !== 'query') return rawQuery === '' ? path : `${path}?${rawQuery}`;
  const params = new URLSearchParams(rawQuery);
  params.delete(upstream.param);
  params.append(upstream.param, key);
  return `${path}?${params.toString()}`;
}
