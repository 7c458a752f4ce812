import { createHash, timingSafeEqual } from 'node:crypto';
import Koa, { type Context } from 'koa';
import { createAdminRouter } from './admin.js';
import { HttpError, methodNotAllowed, notFound, notImplemented, unauthorized } from './errors.js';
import type { Logger } from '../../shared/logger.js';
import type { Metrics } from './metrics.js';
import type { Clock, PoolRegistry } from '../pools/registry.js';
import { createRoutes } from './routes.js';

export interface AppDeps {
  registry: PoolRegistry;
  logger: Logger;
  clock: Clock;
  /** Bearer tokens accepted on /api/*; empty means open (the config only allows that on loopback). */
  apiTokens: string[];
  /** Enables /admin when set. */
  adminToken?: string | null;
  metrics: Metrics;
  /** Whether the server can serve (its state backend answers); /healthz reports it. */
  health?: () => { ok: true } | { ok: false; reason: string };
  version: string;
  startedAt: number;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Constant-time check of a presented token against every configured token. */
export function tokenMatches(presented: string, tokens: readonly Buffer[]): boolean {
  const p = digest(presented);
  let ok = false;
  for (const t of tokens) ok = timingSafeEqual(p, t) || ok;
  return ok;
}

/** Builds the Koa app (never listens): JSON errors, bearer auth on /api/*, the routes. */
export function createApp(deps: AppDeps): Koa {
  const app = new Koa();
  app.proxy = false;
  const tokenDigests = deps.apiTokens.map(digest);

  const adminDigests = deps.adminToken ? [digest(deps.adminToken)] : [];
  const bearer = (header: string) => /^Bearer\s+(\S+)\s*$/iu.exec(header)?.[1] ?? null;

  /** Default deny: everything but /healthz needs a token; admin routes take ADMIN_TOKEN. */
  const authorize = (ctx: Context, path: string): void => {
    // Compared case-insensitively, so no spelling of a path (/API/…, /Metrics) can reach a
    // route without the check.
    const lower = path.toLowerCase();
    if (lower === '/admin' || lower.startsWith('/admin/')) {
      if (adminDigests.length === 0) throw notFound(path); // admin API off without ADMIN_TOKEN
      const presented = bearer(ctx.get('authorization'));
      if (presented === null || !tokenMatches(presented, adminDigests)) throw unauthorized();
    } else if (lower !== '/healthz') authorizeApi(ctx);
  };
  const authorizeApi = (ctx: Context): void => {
    if (tokenDigests.length === 0) return;
    const presented = bearer(ctx.get('authorization'));
    if (presented === null || !tokenMatches(presented, tokenDigests)) throw unauthorized();
  };
  /** The single place errors become JSON. */
  const fail = (ctx: Context, err: unknown): void => {
    if (err instanceof HttpError) {
      ctx.status = err.status;
      ctx.set(err.headers);
      ctx.body = { error: err.code, message: err.message, ...err.extra };
    } else {
      deps.logger.error(`unhandled error on ${ctx.method} ${ctx.path}: ${(err as Error).message}`, { stack: (err as Error).stack });
      ctx.status = 500;
      ctx.body = { error: 'internal_error', message: 'internal server error' };
    }
  };
  const record = (ctx: Context, start: number): void => {
    const route = (ctx as unknown as { _matchedRoute?: string })._matchedRoute ?? 'unmatched';
    deps.metrics.request(ctx.method, String(route), ctx.status, (performance.now() - start) / 1000);
  };
  const { router, handoutTarget, handout } = createRoutes(deps);

  // One middleware in front of everything: request latency, auth, JSON errors, and the handout
  // route itself. Nearly every request is a handout, so it is matched here on the raw URL, ahead
  // of any router, and answered without another layer. Not an async function: a handout from an
  // in-memory pool completes synchronously, and then nothing here makes a promise.
  app.use((ctx, next) => {
    const start = performance.now();
    let pending: void | Promise<void>;
    try {
      const pool = ctx.method === 'GET' ? handoutTarget(ctx.url) : null;
      if (pool !== null) {
        authorizeApi(ctx);
        (ctx as unknown as { _matchedRoute: string })._matchedRoute = '/api/:pool'; // the route label the router would set
        pending = handout(ctx, pool);
      } else {
        const path = ctx.path;
        authorize(ctx, path);
        pending = next().then(() => {
          if (ctx.body !== undefined) return;
          if (ctx.status === 404) throw notFound(path);
          // Set by the routers' allowedMethods, with the Allow header a 405 must carry.
          if (ctx.status === 405) throw methodNotAllowed();
          if (ctx.status === 501) throw notImplemented();
        });
      }
    } catch (err) {
      fail(ctx, err);
      record(ctx, start);
      return;
    }
    if (pending === undefined) return record(ctx, start);
    return pending.then(
      () => record(ctx, start),
      (err: unknown) => {
        fail(ctx, err);
        record(ctx, start);
      },
    );
  });

  if (deps.adminToken) {
    const admin = createAdminRouter({ registry: deps.registry, logger: deps.logger });
    app.use(admin.routes());
    app.use(admin.allowedMethods());
  }
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
