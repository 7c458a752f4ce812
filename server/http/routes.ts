import Router from '@koa/router';
import { z } from 'zod';
import { readJson } from './body.js';
import { POOL_NAME } from '../config.js';
import { badRequest, HttpError, unknownPool } from './errors.js';
import { HISTORY_RANGES, type HistoryRange } from '../pools/activity.js';
import { OUTCOMES } from '../pools/rules.js';
import type { Clock, PoolRegistry } from '../pools/registry.js';
import type { Health } from '../state/backend.js';
import type { Metrics } from './metrics.js';
import { mayReport, type Caller } from './auth.js';
import { APP_NAME } from '../apps/model.js';
import type { AppStats } from '../../shared/stats.js';
import type { ActiveAlert } from '../alerts/engine.js';

const reportSchema = z
  .object({
    keyId: z.string().regex(/^[0-9a-f]{12}$/u, 'must be the 12-character keyId from the handout'),
    outcome: z.enum(OUTCOMES, `must be one of ${OUTCOMES.join(', ')}`).optional(),
    status: z.number().int().min(100, 'must be an HTTP status code').max(599, 'must be an HTTP status code').optional(),
    retryAfter: z
      .number()
      .min(0, 'must be seconds, 0 or more')
      .max(31_536_000, 'must be at most a year in seconds')
      .optional(),
    credits: z
      .number()
      .int('must be a whole number of credits')
      .min(0, 'must be 0 or more')
      .max(10_000, 'must be at most 10000')
      .optional(),
  })
  .strict()
  .refine((b) => b.outcome !== undefined || b.status !== undefined, {
    message: 'give an outcome (or the upstream status)',
    path: ['outcome'],
  });

function describe(error: z.ZodError): string {
  const issue = error.issues[0]!;
  if (issue.code === 'unrecognized_keys') return `unknown field ${issue.keys.join(', ')}`;
  return `${issue.path.join('.') || 'body'}: ${issue.message}`;
}

/** What the routes are handed. */
export interface RoutesDeps {
  registry: PoolRegistry;
  metrics: Metrics;
  clock: Clock;
  health: () => Health;
  version: string;
  startedAt: number;
  /** No API token and no app: the API is open (on loopback). Asked per request: apps come and go. */
  open: () => boolean;
  /** The named apps with what each spent; null: the server keeps none. */
  apps: (() => Promise<AppStats[]>) | null;
  /** The alerts in force (the alert engine's). */
  alerts: () => ActiveAlert[];
}

/**
 * Everything but the handout (handout.ts) and /admin (admin.ts): thin handlers that validate, call the
 * registry, shape the JSON.
 */
export function createRoutes(deps: RoutesDeps): Router {
  const router = new Router({ sensitive: true }); // /API/x is not /api/x
  const { registry } = deps;

  const poolName = (raw: string): string => {
    if (!POOL_NAME.test(raw) || !registry.has(raw)) throw unknownPool(raw);
    return raw;
  };

  // `auth` tells a client (the dashboard) whether to ask for a token before calling the API.
  const authMode = () => (deps.open() ? 'open' : 'token');
  router.get('/healthz', (ctx) => {
    const h = deps.health();
    if (h.ok) ctx.body = { status: 'ok', auth: authMode() };
    else {
      ctx.status = 503;
      ctx.body = { status: 'unhealthy', reason: h.reason, auth: authMode() };
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
    const stats = await registry.stats(
      { version: deps.version, uptimeSec: Math.floor((deps.clock() - deps.startedAt) / 1000) },
      { keys, pool },
    );
    const apps = deps.apps ? await deps.apps() : [];
    ctx.body = apps.length > 0 ? { ...stats, apps } : stats;
  });

  router.get('/api/alerts', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { alerts: deps.alerts() };
  });

  router.get('/api/stats/history', async (ctx) => {
    const pool = ctx.query.pool;
    if (typeof pool !== 'string') throw badRequest('invalid_query', 'pool: give one pool, e.g. ?pool=plantid&range=1h');
    poolName(pool);
    const range = ctx.query.range ?? '1h';
    if (typeof range !== 'string' || !(HISTORY_RANGES as readonly string[]).includes(range))
      throw badRequest('invalid_query', `range: must be one of ${HISTORY_RANGES.join(', ')}`);
    ctx.set('Cache-Control', 'no-store');
    const app = ctx.query.app;
    if (app !== undefined) {
      if (typeof app !== 'string' || !APP_NAME.test(app))
        throw badRequest('invalid_query', 'app: give one app name, e.g. ?pool=plantid&app=mobile');
      // An app's own history: this instance's counts since it started.
      ctx.body = { pool, app, ...registry.appActivitySeries(pool, app, range as HistoryRange) };
      return;
    }
    ctx.body = { pool, ...(await registry.activitySeries(pool, range as HistoryRange)) };
  });

  router.post('/api/:pool/report', async (ctx) => {
    const caller = ctx.state.caller as Caller;
    mayReport(caller, ctx.params.pool!);
    const name = poolName(ctx.params.pool!);
    const app = caller.kind === 'app' ? caller.app.name : undefined;
    const parsed = reportSchema.safeParse(await readJson(ctx));
    if (!parsed.success) throw badRequest('invalid_body', describe(parsed.error));
    const b = parsed.data;
    const result = await registry.report(name, {
      keyId: b.keyId,
      outcome: b.outcome,
      status: b.status,
      retryAfterSec: b.retryAfter,
    });
    if (!result.ok) throw new HttpError(404, 'unknown_key', `pool ${name} has no key ${b.keyId}`);
    deps.metrics.report(name, result.outcome);
    // What the call really cost: the handout counted one use; the difference is counted now.
    if (b.credits !== undefined) {
      if (b.credits !== 1) await registry.recount(name, b.keyId, b.credits - 1, deps.clock(), app);
      registry.countSpent(name, b.credits, app);
    }
    ctx.status = 204;
  });

  return router;
}
