import { z } from 'zod';

/**
 * Where a pool's keys are used and how Keywarden asks about them: `pools.json`'s `upstream`.
 * Kindwise (plant.id, crop.health) takes the key in an `Api-Key` header and answers a free
 * `usage_info` with each key's credits, which the sync reads.
 */
export interface KindwiseUpstream {
  type: 'kindwise';
  /** `https://host[:port]`, or `http://` on a loopback host (tests); a key is never sent anywhere else. */
  origin: string;
  /** The usage_info path on `origin`. */
  usagePath: string;
}

export type UpstreamConfig = KindwiseUpstream;

/** The upstreams the built-in pools have unless pools.json says otherwise (`"upstream": null` turns one off). */
export const DEFAULT_UPSTREAMS: Readonly<Record<string, UpstreamConfig>> = {
  plantid: { type: 'kindwise', origin: 'https://plant.id', usagePath: '/api/v3/usage_info' },
  healthid: { type: 'kindwise', origin: 'https://crop.kindwise.com', usagePath: '/api/v1/usage_info' },
};

/** usage_info on plant.id, for a Kindwise upstream of a pool that is not built in. */
const KINDWISE_USAGE_PATH = '/api/v3/usage_info';

const LOOPBACK_HOST = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\]|localhost)$/u;

/** An origin a key may be sent to: https, or http on a loopback host; nothing but scheme, host and port. */
const origin = z.string().transform((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: `must be a URL such as https://plant.id (got ${JSON.stringify(value)})` });
    return z.NEVER;
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK_HOST.test(url.hostname))) {
    ctx.addIssue({ code: 'custom', message: `must be https:// (http:// only on a loopback host such as 127.0.0.1; got ${JSON.stringify(value)})` });
    return z.NEVER;
  }
  if (url.username !== '' || url.password !== '' || url.pathname !== '/' || url.search !== '' || url.hash !== '') {
    ctx.addIssue({ code: 'custom', message: `must be scheme, host and port only, with no path, query or credentials (got ${JSON.stringify(url.origin + url.pathname)})` });
    return z.NEVER;
  }
  return url.origin;
});

/** A path on the origin: one leading slash (`//host/…` would name another host), no query. */
const path = z.string().regex(/^\/(?!\/)[^?#\s]*$/u, 'must be a path on the origin such as /api/v3/usage_info');

const kindwiseSchema = z
  .object({
    type: z.literal('kindwise').default('kindwise'),
    origin: origin.optional(),
    usagePath: path.optional(),
  })
  .strict();

/** pools.json's `upstream` field (absent: the pool's default; null: none). */
export const upstreamSchema = kindwiseSchema.nullable();

export type UpstreamEntry = z.infer<typeof upstreamSchema>;

/**
 * The upstream of pool `name`: its pools.json entry over the pool's default. Returns a message
 * naming the field when the entry leaves out what has no default.
 */
export function resolveUpstream(name: string, entry: UpstreamEntry | undefined): UpstreamConfig | null | { error: string } {
  if (entry === null) return null;
  const fallback = DEFAULT_UPSTREAMS[name];
  if (entry === undefined) return fallback ?? null;
  const originValue = entry.origin ?? fallback?.origin;
  if (originValue === undefined) return { error: 'upstream.origin: required (no default for this pool)' };
  return { type: 'kindwise', origin: originValue, usagePath: entry.usagePath ?? fallback?.usagePath ?? KINDWISE_USAGE_PATH };
}

/**
 * The URL of `path` on `upstream.origin`, checked to be on that origin: the one place a URL that
 * will carry a key is made.
 */
export function upstreamUrl(upstream: UpstreamConfig, pathAndQuery: string): URL {
  const url = new URL(pathAndQuery, upstream.origin);
  if (url.origin !== upstream.origin) throw new Error(`refusing to send a key off ${upstream.origin}`);
  return url;
}
