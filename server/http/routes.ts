import Router, { type Layer } from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import type { AppDeps } from './app.js';
import { readJson } from './body.js';
import { POOL_NAME } from '../config.js';
import { badRequest, HttpError, unavailable, unknownPool } from './errors.js';
import { OUTCOMES } from '../pools/rules.js';
import type { Handout } from '../pools/pool.js';

const reportSchema = z
  .object({
    keyId: z.string().regex(/^[0-9a-f]{12}$/u, 'must be the 12-character keyId from the handout'),
    outcome: z.enum(OUTCOMES, `must be one of ${OUTCOMES.join(', ')}`).optional(),
    status: z.number().int().min(100, 'must be an HTTP status code').max(599, 'must be an HTTP status code').optional(),
    retryAfter: z.number().min(0, 'must be seconds, 0 or more').max(31_536_000, 'must be at most a year in seconds').optional(),
  })
  .strict()
  .refine((b) => b.outcome !== undefined || b.status !== undefined, { message: 'give an outcome (or the upstream status)', path: ['outcome'] });

/** Largest lease (`?count=`) one request may ask for. */
export const MAX_LEASE = 1000;

const HANDOUT_OUTCOME = { no_key_available: 'no_key', pool_rate_limited: 'rate_limited', pool_throttled: 'throttled' } as const;

function describe(error: z.ZodError): string {
  const issue = error.issues[0]!;
  if (issue.code === 'unrecognized_keys') return `unknown field ${issue.keys.join(', ')}`;
  return `${issue.path.join('.') || 'body'}: ${issue.message}`;
}

/**
 * `GET /api/<pool>` on the raw URL (path and an optional query). Where it matches, the path is
 * exactly what Koa's parsed `ctx.path` would be, so the handout route needs no parsed URL.
 */
const HANDOUT_URL = /^\/api\/([a-z0-9_-]{1,64})(?:\?|$)/u;

export interface Routes {
  router: Router;
  /**
   * The pool a `GET` of this URL asks a key of, or null (then the router serves it). The app
   * matches handouts ahead of any router (see app.ts): nearly every request is one, and
   * @koa/router costs a regex per route, a composed layer chain and another async layer.
   */
  handoutTarget(url: string): string | null;
  /** The handout route's handler, the same the router's `GET /api/:pool` runs (the router also answers its 405s). */
  handout(ctx: Context, pool: string): void | Promise<void>;
}

const JSON_TYPE = 'application/json; charset=utf-8';

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

/** Thin handlers: validate, call the registry, shape the JSON. */
export function createRoutes(deps: AppDeps): Routes {
  const router = new Router({ sensitive: true }); // /API/x is not /api/x
  const { registry } = deps;

  const poolName = (raw: string): string => {
    if (!POOL_NAME.test(raw) || !registry.has(raw)) throw unknownPool(raw);
    return raw;
  };

  router.get('/healthz', (ctx) => {
    const h = deps.health?.() ?? { ok: true };
    if (h.ok) ctx.body = { status: 'ok' };
    else {
      ctx.status = 503;
      ctx.body = { status: 'unhealthy', reason: h.reason };
    }
  });

  router.get('/metrics', async (ctx) => {
    ctx.set('Content-Type', deps.metrics.registry.contentType);
    ctx.body = await deps.metrics.registry.metrics();
  });

  router.get('/api/stats', async (ctx) => {
    const pool = typeof ctx.query.pool === 'string' ? ctx.query.pool : undefined;
    if (pool !== undefined) poolName(pool);
    const q = ctx.query.keys;
    const keys = q === '0' || q === 'false' || q === 'none' ? 'none' : q === 'out' ? 'out' : 'all';
    ctx.body = await registry.stats({ version: deps.version, uptimeSec: Math.floor((deps.clock() - deps.startedAt) / 1000) }, { keys, pool });
  });

  const answer = (ctx: Context, name: string, want: number, result: Handout): void => {
    deps.metrics.handout(name, result.ok ? 'served' : HANDOUT_OUTCOME[result.reason]);
    if (result.ok) {
      // Written here whole, through Koa's documented bypass: its response path (body setter,
      // respond, a header store keyed by lower-cased names) cost about 14k instructions a
      // request, more than everything else this route does. Errors still go through Koa.
      const body = handoutJson(name, result, want > 1);
      ctx.respond = false;
      ctx.res.writeHead(200, ['Content-Type', JSON_TYPE, 'Content-Length', String(Buffer.byteLength(body)), 'Cache-Control', 'no-store']);
      ctx.res.end(body);
      return;
    }
    ctx.set('Cache-Control', 'no-store');
    switch (result.reason) {
      case 'no_key_available':
        throw unavailable(503, 'no_key_available', `pool ${name} has no usable key right now`, result.retryAfterMs);
      case 'pool_rate_limited':
        throw unavailable(429, 'pool_rate_limited', `pool ${name} reached its poolPerMinute limit`, result.retryAfterMs);
      case 'pool_throttled':
        throw unavailable(429, 'pool_throttled', `pool ${name} is throttled upstream (many keys reported 429 at once)`, result.retryAfterMs);
    }
  };

  /** Not an async function: an in-memory pool answers synchronously, and then so does this. */
  const handout = (ctx: Context, rawName: string): void | Promise<void> => {
    const name = poolName(rawName);
    const count = ctx.url.includes('?') ? ctx.query.count : undefined; // no query: skip parsing one
    let want = 1;
    if (count !== undefined) {
      if (typeof count !== 'string' || !/^\d+$/u.test(count) || Number(count) < 1 || Number(count) > MAX_LEASE) {
        throw badRequest('invalid_query', `count: must be a whole number from 1 to ${MAX_LEASE}`);
      }
      want = Number(count);
    }
    const pending = registry.handout(name, want);
    if (pending instanceof Promise) return pending.then((result) => answer(ctx, name, want, result));
    answer(ctx, name, want, pending);
  };

  // GET only. @koa/router answers HEAD on every GET route, and a HEAD here would hand out a key
  // and drop it with the body; without HEAD it is a 405 with Allow: GET, so a monitor's HEAD
  // check never uses up a key.
  const handoutRoute = router.register('/api/:pool', ['GET'], (ctx) => handout(ctx, ctx.params.pool!)) as Layer;
  handoutRoute.methods = ['GET'];

  router.post('/api/:pool/report', async (ctx) => {
    const name = poolName(ctx.params.pool!);
    const parsed = reportSchema.safeParse(await readJson(ctx));
    if (!parsed.success) throw badRequest('invalid_body', describe(parsed.error));
    const b = parsed.data;
    const result = await registry.report(name, { keyId: b.keyId, outcome: b.outcome, status: b.status, retryAfterSec: b.retryAfter });
    if (!result.ok) throw new HttpError(404, 'unknown_key', `pool ${name} has no key ${b.keyId}`);
    deps.metrics.report(name, result.outcome);
    ctx.status = 204;
  });

  const handoutTarget = (url: string): string | null => {
    const m = HANDOUT_URL.exec(url);
    return m === null || m[1] === 'stats' ? null : m[1]!;
  };

  return { router, handoutTarget, handout };
}
