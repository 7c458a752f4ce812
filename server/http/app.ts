import Koa, { type Context } from 'koa';
import type { Logger } from '../../shared/logger.js';
import type { KeyFiles } from '../keys/key-files.js';
import type { Clock, PoolRegistry } from '../pools/registry.js';
import { StateUnavailableError } from '../pools/contract.js';
import { RepeatedFailure } from '../../shared/repeats.js';
import type { Health } from '../state/backend.js';
import type { KeyChecker } from '../upstream/screen.js';
import { createAdminRouter } from './admin.js';
import { Operations } from '../ops/operations.js';
import { appName, createAuth, handoutSpender, mayReadStats, type Caller } from './auth.js';
import type { AppsFile } from '../apps/file.js';
import { AppRates } from '../apps/rate.js';
import { AppTraffic } from '../apps/traffic.js';
import type { AuditLog } from '../audit/log.js';
import type { ActiveAlert } from '../alerts/engine.js';
import { unavailable } from './errors.js';
import { HttpError, methodNotAllowed, notFound, notImplemented } from './errors.js';
import { createHandout, HANDOUT_ROUTE, handoutTarget } from './handout.js';
import { createProxy, PROXY_ROUTE, proxyTarget, type ProxyDeps } from './proxy.js';
import { createDashboard, DASHBOARD_ROUTE, isDashboardPath } from './dashboard.js';
import type { Metrics } from './metrics.js';
import { createRoutes } from './routes.js';

export interface AppDeps {
  registry: PoolRegistry;
  /** The pools' key files, which the admin API edits. */
  keyFiles: KeyFiles;
  logger: Logger;
  clock: Clock;
  /** Bearer tokens accepted on /api/*; empty means open (the config only allows that on loopback). */
  apiTokens: string[];
  /** Enables /admin when set. */
  adminToken?: string | null;
  metrics: Metrics;
  /** Whether the server can serve (its state backend answers); /healthz reports it. */
  health?: () => Health;
  version: string;
  startedAt: number;
  /** Asks the pools' upstreams about keys (check before add, `keys check`); null: none configured. */
  upstream?: KeyChecker | null;
  /** The proxy's settings (`/proxy/<pool>/…`). */
  proxy: Omit<ProxyDeps, 'registry' | 'auth' | 'logger' | 'metrics' | 'clock' | 'admit'>;
  /** The named apps (APPS_FILE); null: none (API_TOKENS only). */
  apps?: AppsFile | null;
  /** The audit trail of admin actions (AUDIT_FILE); null: none kept. */
  audit?: AuditLog | null;
  /** Apps' requests on this instance (metrics read it too). */
  traffic?: AppTraffic;
  /** The alert engine, whose alerts in force `GET /api/alerts` lists; null: none runs. */
  alerts?: { list(): ActiveAlert[] } | null;
}

/** Paths that show stats (for API tokens, the open API, and apps made with `stats`). */
const STATS_PATH = /^\/(metrics|api\/stats(\/history)?|api\/alerts)$/iu;

/** Builds the Koa app (never listens): JSON errors, bearer auth, the handout, the routes. */
export function createApp(deps: AppDeps): Koa {
  const app = new Koa();
  app.proxy = false;
  const apps = deps.apps ?? null;
  const auth = createAuth(deps.apiTokens, deps.adminToken, apps, deps.clock);
  const traffic = deps.traffic ?? new AppTraffic();
  const rates = new AppRates();
  /** An app over its ratePerMinute is a 429 before anything else happens. */
  const admit = (caller: Caller): void => {
    if (caller.kind !== 'app') return;
    const wait = rates.take(caller.app.name, caller.app.ratePerMinute, deps.clock());
    if (wait !== null)
      throw unavailable(
        429,
        'app_rate_limited',
        `app ${caller.app.name} reached its ratePerMinute (${caller.app.ratePerMinute})`,
        wait,
      );
  };
  const handout = createHandout(deps);
  const dashboard = createDashboard();
  const proxy = createProxy({
    ...deps.proxy,
    registry: deps.registry,
    auth,
    admit,
    traffic,
    logger: deps.logger,
    metrics: deps.metrics,
    clock: deps.clock,
  });

  // An error that recurs on every request (a bug on a hot path) is one line and a count a minute,
  // not a line with a stack per request. Distinct messages are kept apart, up to a bound.
  const unhandled = new Map<string, RepeatedFailure>();
  const logUnhandled = (ctx: Context, err: Error): void => {
    const app = appName(ctx.state.caller as Caller | undefined);
    const message =
      `unhandled error on ${ctx.method} ${ctx.path.slice(0, 100)}${app ? ` (app ${app})` : ''}: ` +
      String(err.message).slice(0, 300);
    if (unhandled.size >= 100 && !unhandled.has(message)) unhandled.clear();
    let trouble = unhandled.get(message);
    if (!trouble) unhandled.set(message, (trouble = new RepeatedFailure(deps.logger)));
    trouble.failed(message, trouble.failing ? {} : { stack: err.stack });
  };

  /** The single place errors become JSON. */
  const fail = (ctx: Context, err: unknown): void => {
    if (err instanceof StateUnavailableError) {
      deps.logger.debug(err.detail);
      ctx.status = 503;
      ctx.set('Retry-After', '1');
      ctx.body = { error: 'state_unavailable', message: err.message, retryAfter: 1 };
    } else if (err instanceof HttpError) {
      ctx.status = err.status;
      ctx.set(err.headers);
      ctx.body = { error: err.code, message: err.message, ...err.extra };
    } else {
      logUnhandled(ctx, err as Error);
      ctx.status = 500;
      ctx.body = { error: 'internal_error', message: 'internal server error' };
    }
  };
  const record = (ctx: Context, route: string | undefined, start: number, pool?: string | null): void => {
    deps.metrics.request(ctx.method, route ?? 'unmatched', ctx.status, (performance.now() - start) / 1000);
    const caller = ctx.state.caller as Caller | undefined;
    if (caller?.kind === 'app' && pool) traffic.answered(caller.app.name, pool, ctx.status, deps.clock());
  };
  /** The route @koa/router matched (its documented `_matchedRoute`), read after the routers ran. */
  const routerRoute = (ctx: Context): string | undefined =>
    (ctx as unknown as { _matchedRoute?: string })._matchedRoute;

  // One middleware in front of everything: request latency, auth, JSON errors, the handout
  // (handout.ts) and the proxy (proxy.ts), matched here on the raw URL ahead of any router. Not an async function: a
  // handout from an in-memory pool completes synchronously, and then nothing here makes a promise.
  app.use((ctx, next) => {
    const start = performance.now();
    const pool = handoutTarget(ctx.url);
    const proxied = pool === null ? proxyTarget(ctx.url) : null;
    let route = pool !== null ? HANDOUT_ROUTE : proxied !== null ? PROXY_ROUTE : undefined;
    let pending: void | Promise<void> = undefined;
    try {
      if (pool !== null) {
        const caller = (ctx.state.caller = auth.apiCaller(ctx));
        const spender = handoutSpender(caller, pool);
        admit(caller);
        pending = handout(ctx, pool, spender);
      } else if (proxied !== null) {
        pending = proxy(ctx, proxied); // its own auth: the token may come in the upstream's key header
      } else if (isDashboardPath(ctx.path) && dashboard(ctx)) {
        // The page and its files: no token (they hold no data; the page asks the API with one).
        route = DASHBOARD_ROUTE;
      } else {
        const path = ctx.path;
        // Compared case-insensitively, so no spelling of a path (/API/…, /Metrics) can reach a
        // route without the check.
        const lower = path.toLowerCase();
        if (lower === '/admin' || lower.startsWith('/admin/')) ctx.state.actor = auth.admin(ctx);
        else if (lower !== '/healthz') {
          const caller = (ctx.state.caller = auth.apiCaller(ctx));
          if (STATS_PATH.test(path)) mayReadStats(caller);
        }
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
      record(ctx, route ?? routerRoute(ctx), start, pool ?? proxied?.pool);
      return;
    }
    if (pending === undefined) return record(ctx, route, start, pool);
    return pending.then(
      () => record(ctx, route ?? routerRoute(ctx), start, pool ?? proxied?.pool),
      (err: unknown) => {
        fail(ctx, err);
        record(ctx, route ?? routerRoute(ctx), start, pool ?? proxied?.pool);
      },
    );
  });

  // Mounted always: the auth in front hides /admin (404) while there is no ADMIN_TOKEN and no admin app.
  const operations = new Operations({
    registry: deps.registry,
    keyFiles: deps.keyFiles,
    logger: deps.logger,
    clock: deps.clock,
    checker: deps.upstream ?? null,
    actor: 'admin',
    apps,
    traffic,
    audit: deps.audit ?? null,
  });
  const admin = createAdminRouter((ctx) => operations.as(String(ctx.state.actor ?? 'admin'), ctx.ip || null));
  app.use(admin.routes());
  app.use(admin.allowedMethods());
  const router = createRoutes({
    ...deps,
    health: deps.health ?? (() => ({ ok: true })),
    open: () => deps.apiTokens.length === 0 && (apps?.apps.length ?? 0) === 0,
    apps: apps === null ? null : () => operations.apps(),
    alerts: () => deps.alerts?.list() ?? [],
  });
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
