import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { readJson } from './body.js';
import { badRequest, HttpError } from './errors.js';
import type { KeyChange, KeywardenOps } from '../ops/contract.js';

/** Admin bodies may carry many keys at once. */
const ADMIN_BODY_LIMIT = 1024 * 1024;
/** An imported state file: 100,000 keys take about 10 MB. */
const STATE_BODY_LIMIT = 64 * 1024 * 1024;

const addSchema = z.union([
  z.object({ key: z.string() }).strict(),
  z
    .object({
      keys: z.array(z.string()).min(1, 'must hold at least one key').max(10_000, 'at most 10,000 keys at once'),
    })
    .strict(),
]);
const rotateSchema = z.object({ graceSeconds: z.number().int().min(0).max(31_536_000).optional() }).strict();
/** Optional body of disable/enable/reset. */
const reasonSchema = z.object({ reason: z.string().max(200).optional() }).strict();

/**
 * `/admin`: the operators' use cases (ops/) over HTTP, for ADMIN_TOKEN holders: the dashboard
 * and the CLI call these. Each route reads its request, runs one operation and shapes its answer;
 * plaintext keys arrive in request bodies and go only to the key file.
 */
export function createAdminRouter(opsFor: (ctx: Context) => KeywardenOps): Router {
  const router = new Router({ prefix: '/admin', sensitive: true });
  // Each request acts as who sent it (ctx.state.actor, set by the auth in front), from its address.
  router.use((ctx, next) => {
    ctx.state.ops = opsFor(ctx);
    return next();
  });
  const opsOf = (ctx: Context) => ctx.state.ops as KeywardenOps;

  router.get('/pools', async (ctx) => {
    ctx.body = { pools: await opsOf(ctx).pools() };
  });

  router.get('/pools/:pool/keys', async (ctx) => {
    const pool = ctx.params.pool!;
    ctx.body = { pool, keys: await opsOf(ctx).keys(pool) };
  });

  router.post('/pools/:pool/keys', async (ctx) => {
    const parsed = addSchema.safeParse(await readJson(ctx, ADMIN_BODY_LIMIT));
    if (!parsed.success) throw badRequest('invalid_body', 'send {"key": "..."} or {"keys": ["...", ...]}');
    const keys = 'key' in parsed.data ? [parsed.data.key] : parsed.data.keys;
    const force = ctx.query.force === 'true' || ctx.query.force === '1';
    try {
      ctx.body = await opsOf(ctx).addKeys(ctx.params.pool!, keys, force);
    } catch (err) {
      if (err instanceof HttpError && err.code === 'invalid_key')
        throw new HttpError(err.status, err.code, `${err.message} (add ?force=true to add them anyway)`, err.extra);
      throw err;
    }
    ctx.status = 201;
  });

  router.post('/pools/:pool/check', async (ctx) => {
    const pool = ctx.params.pool!;
    ctx.body = { pool, keys: await opsOf(ctx).checkKeys(pool) };
  });

  router.delete('/pools/:pool/keys/:keyId', async (ctx) => {
    await opsOf(ctx).removeKey(ctx.params.pool!, ctx.params.keyId!);
    ctx.status = 204;
  });

  // State moves between backends and machines as a state file (keyIds only, never a key).
  router.get('/state', async (ctx) => {
    ctx.body = await opsOf(ctx).exportState();
  });

  router.post('/state', async (ctx) => {
    ctx.body = await opsOf(ctx).importState(await readJson(ctx, STATE_BODY_LIMIT));
  });

  router.post('/pools/:pool/clear-throttle', async (ctx) => {
    const pool = ctx.params.pool!;
    ctx.body = { pool, cleared: await opsOf(ctx).clearThrottle(pool) };
  });

  /** A state change of one key, with an optional reason: 204. */
  const keyChange = (change: KeyChange) => async (ctx: Context) => {
    let reason: string | undefined;
    if (ctx.get('content-length') && ctx.get('content-length') !== '0') {
      const parsed = reasonSchema.safeParse(await readJson(ctx));
      if (!parsed.success) throw badRequest('invalid_body', 'send nothing or {"reason": "..."}');
      reason = parsed.data.reason;
    }
    await opsOf(ctx).changeKey(ctx.params.pool!, ctx.params.keyId!, change, reason);
    ctx.status = 204;
  };
  router.post('/pools/:pool/keys/:keyId/disable', keyChange('disable'));
  router.post('/pools/:pool/keys/:keyId/enable', keyChange('enable'));
  router.post('/pools/:pool/keys/:keyId/reset', keyChange('reset'));

  router.get('/apps', async (ctx) => {
    ctx.body = { apps: await opsOf(ctx).apps() };
  });

  router.post('/apps', async (ctx) => {
    ctx.body = await opsOf(ctx).addApp(await readJson(ctx));
    ctx.status = 201;
    ctx.set('Cache-Control', 'no-store'); // the token, shown this once
  });

  router.get('/apps/:name', async (ctx) => {
    ctx.body = await opsOf(ctx).app(ctx.params.name!);
  });

  router.patch('/apps/:name', async (ctx) => {
    ctx.body = await opsOf(ctx).updateApp(ctx.params.name!, await readJson(ctx));
  });

  router.delete('/apps/:name', async (ctx) => {
    await opsOf(ctx).removeApp(ctx.params.name!);
    ctx.status = 204;
  });

  router.post('/apps/:name/rotate', async (ctx) => {
    let graceSeconds = 0;
    if (ctx.get('content-length') && ctx.get('content-length') !== '0') {
      const parsed = rotateSchema.safeParse(await readJson(ctx));
      if (!parsed.success) throw badRequest('invalid_body', 'send nothing or {"graceSeconds": <seconds>}');
      graceSeconds = parsed.data.graceSeconds ?? 0;
    }
    ctx.body = await opsOf(ctx).rotateApp(ctx.params.name!, graceSeconds);
    ctx.set('Cache-Control', 'no-store');
  });

  router.get('/audit', async (ctx) => {
    const { since, limit } = ctx.query;
    let from: number | undefined;
    if (since !== undefined) {
      from = typeof since === 'string' ? (/^\d+$/u.test(since) ? Number(since) : Date.parse(since)) : NaN;
      if (!Number.isFinite(from))
        throw badRequest('invalid_query', 'since: give an ISO date-time or epoch milliseconds');
    }
    let n = 100;
    if (limit !== undefined) {
      n = typeof limit === 'string' && /^\d+$/u.test(limit) ? Number(limit) : NaN;
      if (!(n >= 1 && n <= 1000)) throw badRequest('invalid_query', 'limit: must be a whole number from 1 to 1000');
    }
    ctx.body = { entries: await opsOf(ctx).audit(from, n) };
  });

  return router;
}
