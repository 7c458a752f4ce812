import { HOP_BY_HOP } from './answer.js';

/** What the proxy reads of a caller's request: where it goes, and which of its headers go along. */

/** `/proxy/<pool>[/<path>][?<query>]` on the raw URL. */
const PROXY_URL = /^\/proxy\/([^/?]+)(\/[^?]*)?(?:\?(.*))?$/su;

export interface ProxyTarget {
  pool: string;
  /** The path to send upstream (at least `/`). */
  path: string;
  /** The raw query, without `?`. */
  query: string;
}

/** The pool and upstream path of a proxy URL, or null when the URL is not one. */
export function proxyTarget(url: string): ProxyTarget | null {
  if (!url.startsWith('/proxy/')) return null;
  const m = PROXY_URL.exec(url);
  return m === null ? null : { pool: m[1]!, path: m[2] ?? '/', query: m[3] ?? '' };
}

/**
 * Besides hop-by-hop headers, what a request upstream never carries from the caller: its Host,
 * its credentials, its length (the body is re-sent whole).
 */
const NOT_FORWARDED = new Set([...HOP_BY_HOP, 'host', 'authorization', 'content-length', 'expect']);

/** The caller's headers to send upstream, in their order and spelling, without what must not go. */
export function forwardHeaders(raw: readonly string[], keyHeaderName: string | null, listed: Set<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (NOT_FORWARDED.has(name) || name === keyHeaderName || listed.has(name)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

/** The attempt outcome metrics count an answer under. */
export function attemptOutcome(status: number): 'ok' | 'invalid' | 'refused' | 'error' {
  if (status >= 500) return 'error';
  if (status === 401 || status === 403) return 'invalid';
  return status === 429 ? 'refused' : 'ok';
}
