import { z } from 'zod';

/**
 * Where a pool's keys are used and how Keywarden asks about them: `pools.json`'s `upstream`.
 * Kindwise (plant.id, crop.health, insect.id, mushroom.id) takes the key in an `Api-Key` header
 * and answers a free `usage_info` with each key's credits, which the sync reads.
 */
export interface KindwiseUpstream {
  type: 'kindwise';
  /** Which Kindwise API: it sets the price list (upstream/prices.ts) and the defaults below. */
  product: KindwiseProduct;
  /** `https://host[:port]`, or `http://` on a loopback host (tests); a key is never sent anywhere else. */
  origin: string;
  /** Where the API's paths start on `origin` (`/api/v3`). */
  apiBase: string;
  /** The usage_info path on `origin`. */
  usagePath: string;
}

/** Kindwise's products, each with its origin and the base of its API paths. */
export const KINDWISE_PRODUCTS = {
  'plant.id': { origin: 'https://plant.id', apiBase: '/api/v3' },
  'crop.health': { origin: 'https://crop.kindwise.com', apiBase: '/api/v1' },
  'insect.id': { origin: 'https://insect.kindwise.com', apiBase: '/api/v1' },
  'mushroom.id': { origin: 'https://mushroom.kindwise.com', apiBase: '/api/v1' },
} as const;
export type KindwiseProduct = keyof typeof KINDWISE_PRODUCTS;
const PRODUCT_NAMES = Object.keys(KINDWISE_PRODUCTS) as [KindwiseProduct, ...KindwiseProduct[]];

/** A Kindwise upstream of `product` (at `origin`, when given instead of the product's). */
export function kindwiseUpstream(product: KindwiseProduct, origin?: string): KindwiseUpstream {
  const p = KINDWISE_PRODUCTS[product];
  return {
    type: 'kindwise',
    product,
    origin: origin ?? p.origin,
    apiBase: p.apiBase,
    usagePath: `${p.apiBase}/usage_info`,
  };
}

/**
 * Any other API that takes its key in a header: `header` set to `format` with `{key}` replaced (e.g.
 * Authorization: Bearer {key}).
 */
export interface HeaderUpstream {
  type: 'header';
  origin: string;
  header: string;
  format: string;
}

/** An API that takes its key in a query parameter (e.g. ?key=…). */
export interface QueryUpstream {
  type: 'query';
  origin: string;
  param: string;
}

export type UpstreamConfig = KindwiseUpstream | HeaderUpstream | QueryUpstream;

/** The upstreams the built-in pools have unless pools.json says otherwise (`"upstream": null` turns one off). */
export const DEFAULT_UPSTREAMS: Readonly<Record<string, UpstreamConfig>> = {
  plantid: kindwiseUpstream('plant.id'),
  healthid: kindwiseUpstream('crop.health'),
};

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
    ctx.addIssue({
      code: 'custom',
      message: `must be https:// (http:// only on a loopback host such as 127.0.0.1; got ${JSON.stringify(value)})`,
    });
    return z.NEVER;
  }
  if (url.username !== '' || url.password !== '' || url.pathname !== '/' || url.search !== '' || url.hash !== '') {
    ctx.addIssue({
      code: 'custom',
      message:
        `must be scheme, host and port only, with no path, query or credentials (got ` +
        `${JSON.stringify(url.origin + url.pathname)})`,
    });
    return z.NEVER;
  }
  return url.origin;
});

/** A path on the origin: one leading slash (`//host/…` would name another host), no query. */
const path = z.string().regex(/^\/(?!\/)[^?#\s]*$/u, 'must be a path on the origin such as /api/v3/usage_info');

const kindwiseSchema = z
  .object({
    type: z.literal('kindwise'),
    product: z.enum(PRODUCT_NAMES, { error: `must be one of ${PRODUCT_NAMES.join(', ')}` }).optional(),
    origin: origin.optional(),
    usagePath: path.optional(),
  })
  .strict();

/** An HTTP header name (RFC 9110 token). */
const headerName = z
  .string()
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/u, 'must be an HTTP header name such as Authorization');

const headerSchema = z
  .object({
    type: z.literal('header'),
    origin,
    header: headerName.refine(
      (h) => !['host', 'content-length', 'transfer-encoding', 'connection'].includes(h.toLowerCase()),
      'cannot carry a key',
    ),
    format: z
      .string()
      .regex(/^[^\r\n]*\{key\}[^\r\n]*$/u, 'must hold {key} once, on one line, e.g. "Bearer {key}"')
      .refine((f) => f.split('{key}').length === 2, 'must hold {key} once, on one line, e.g. "Bearer {key}"')
      .default('{key}'),
  })
  .strict();

const querySchema = z
  .object({
    type: z.literal('query'),
    origin,
    param: z.string().regex(/^[A-Za-z0-9_.~-]{1,64}$/u, 'must be a query parameter name such as key'),
  })
  .strict();

/**
 * pools.json's `upstream` field (absent: the pool's default; null: none). Without `type` it is
 * Kindwise, which plantid and healthid default to.
 */
export const upstreamSchema = z
  .preprocess(
    (v) =>
      v !== null && typeof v === 'object' && !Array.isArray(v) && !('type' in v) ? { type: 'kindwise', ...v } : v,
    z.discriminatedUnion('type', [kindwiseSchema, headerSchema, querySchema], {
      error: 'must be kindwise, header or query',
    }),
  )
  .nullable();

export type UpstreamEntry = z.infer<typeof upstreamSchema>;

/**
 * The upstream of pool `name`: its pools.json entry over the pool's default. Returns a message
 * naming the field when the entry leaves out what has no default.
 */
export function resolveUpstream(
  name: string,
  entry: UpstreamEntry | undefined,
): UpstreamConfig | null | { error: string } {
  if (entry === null) return null;
  const fallback = DEFAULT_UPSTREAMS[name];
  if (entry === undefined) return fallback ?? null;
  if (entry.type === 'header' || entry.type === 'query') return entry;
  const base = fallback?.type === 'kindwise' && entry.product === undefined ? fallback : null;
  const product = entry.product ?? base?.product ?? 'plant.id';
  const originValue = entry.origin ?? (entry.product ? KINDWISE_PRODUCTS[entry.product].origin : base?.origin);
  if (originValue === undefined)
    return { error: 'upstream.origin: required (no default for this pool; or name a product)' };
  const upstream = kindwiseUpstream(product, originValue);
  // The older form names usage_info's path; the API's paths start where it does.
  if (entry.usagePath !== undefined) {
    upstream.usagePath = entry.usagePath;
    if (entry.usagePath.endsWith('/usage_info')) upstream.apiBase = entry.usagePath.slice(0, -'/usage_info'.length);
  }
  return upstream;
}

/**
 * The URL of `pathAndQuery` (starting with `/`) on `upstream.origin`, checked to be on that
 * origin: the one place a URL that will carry a key is made. The path is appended, never
 * resolved, so `//host/…` is a path on the origin, not another host.
 */
export function upstreamUrl(upstream: UpstreamConfig, pathAndQuery: string): URL {
  if (!pathAndQuery.startsWith('/'))
    throw new Error(
      `refusing to send a key off ${upstream.origin}: ${JSON.stringify(pathAndQuery.slice(0, 100))} is not a path`,
    );
  const url = new URL(upstream.origin + pathAndQuery);
  if (url.origin !== upstream.origin) throw new Error(`refusing to send a key off ${upstream.origin}`);
  return url;
}

/** The pools whose upstream tells each key's usage (Kindwise): the ones the sync checks. */
export function usageUpstreams(upstreams: ReadonlyMap<string, UpstreamConfig>): Map<string, KindwiseUpstream> {
  return new Map([...upstreams].filter((e): e is [string, KindwiseUpstream] => e[1].type === 'kindwise'));
}
