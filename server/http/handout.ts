import type { Context } from 'koa';
import { POOL_NAME } from '../config.js';
import type { Handout } from '../pools/contract.js';
import type { Spender } from '../pools/budgets.js';
import type { PoolRegistry } from '../pools/registry.js';
import { badRequest, methodNotAllowed, noKeyError, notImplemented, unknownPool } from './errors.js';
import type { Metrics } from './metrics.js';

/** Largest lease (`?count=`) one request may ask for. */
export const MAX_LEASE = 1000;

/** The route label the handout's requests carry in metrics. */
export const HANDOUT_ROUTE = '/api/:pool';

/**
 * `/api/<one segment>` on the raw URL (path and an optional query), so the handout needs no
 * parsed URL. Any segment: one that is no pool name is the handout's 404 unknown_pool.
 */
const HANDOUT_URL = /^\/api\/([^/?]+)(?:\?|$)/u;

/** Methods @koa/router knows: any other is 501 there, and so here. */
const KNOWN_METHODS = new Set(['HEAD', 'OPTIONS', 'GET', 'PUT', 'PATCH', 'POST', 'DELETE']);

const HANDOUT_OUTCOME = {
  no_key_available: 'no_key',
  pool_rate_limited: 'rate_limited',
  pool_throttled: 'throttled',
  app_budget_exhausted: 'budget',
} as const;

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * The pool a request to this URL is a handout from, or null (then the routers serve it).
 * `/api/stats` and `/api/alerts` are routes of their own, which is why no pool may be named so.
 */
export function handoutTarget(url: string): string | null {
  const m = HANDOUT_URL.exec(url);
  return m === null || m[1] === 'stats' || m[1] === 'alerts' ? null : m[1]!;
}

/**
 * A served handout's body: the text `JSON.stringify` makes of `{ pool, key, keyId, remaining }`
 * (plus `granted` for a lease), built by concatenation on the hot path. Pool names and keyIds
 * never need escaping; a key may hold quotes or backslashes, so it goes through JSON.stringify.
 */
export function handoutJson(pool: string, h: Handout & { ok: true }, lease: boolean): string {
  const remaining = h.remaining !== null && Number.isFinite(h.remaining) ? String(h.remaining) : 'null';
  const head = `{"pool":"${pool}","key":${JSON.stringify(h.key)},"keyId":"${h.keyId}","remaining":${remaining}`;
  return lease ? `${head},"granted":${h.granted}}` : `${head}}`;
}

/**
 * `GET /api/<pool>`, the hot path, in one place: the app calls it ahead of any router for every
 * URL `handoutTarget` matches (nearly every request is one, and @koa/router costs a regex per
 * route, a composed layer chain and another async layer). GET only: a HEAD would hand out a key
 * and drop it with the body, so it is a 405 with `Allow: GET`, like every other method; OPTIONS
 * answers the Allow header. Not an async function: an in-memory pool answers synchronously, and
 * then so does this.
 */

export function createHandout(deps: {
  registry: PoolRegistry;
  metrics: Metrics;
}): (ctx: Context, pool: string, spender?: Spender) => void | Promise<void> {
  const { registry, metrics } = deps;

  const answer = (ctx: Context, name: string, want: number, result: Handout, spender?: Spender): void => {
    metrics.handout(name, result.ok ? 'served' : HANDOUT_OUTCOME[result.reason]);
    if (result.ok) {
      // Written here whole, through Koa's documented bypass: its response path (body setter,
      // respond, a header store keyed by lower-cased names) cost about 14k instructions a
      // request, more than everything else this route does. Errors still go through Koa.
      const body = handoutJson(name, result, want > 1);
      ctx.respond = false;
      ctx.res.writeHead(200, [
        'Content-Type',
        JSON_TYPE,
        'Content-Length',
        String(Buffer.byteLength(body)),
        'Cache-Control',
        'no-store',
      ]);
      ctx.res.end(body);
      return;
    }
    ctx.set('Cache-Control', 'no-store');
    throw noKeyError(name, result, spender?.app);
  };

  return (ctx, name, spender) => {
    if (ctx.method !== 'GET') {
      if (!KNOWN_METHODS.has(ctx.method)) throw notImplemented();
      ctx.set('Allow', 'GET');
      if (ctx.method !== 'OPTIONS') throw methodNotAllowed();
      ctx.status = 200;
      ctx.body = ''; // as @koa/router's allowedMethods answers OPTIONS
      return;
    }
    if (!POOL_NAME.test(name) || !registry.has(name)) throw unknownPool(name);
    const count = ctx.url.includes('?') ? ctx.query.count : undefined; // no query: skip parsing one
    let want = 1;
    if (count !== undefined) {
      if (typeof count !== 'string' || !/^\d+$/u.test(count) || Number(count) < 1 || Number(count) > MAX_LEASE) {
        throw badRequest('invalid_query', `count: must be a whole number from 1 to ${MAX_LEASE}`);
      }
      want = Number(count);
    }
    return registry.handout(name, want, spender).then((result) => answer(ctx, name, want, result, spender));
  };
}
