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
/** Optional body of disable/enable/reset. */
const reasonSchema = z.object({ reason: z.string().max(200).optional() }).strict();

/**
 * `/admin`: the operators' use cases (ops/) over HTTP, for ADMIN_TOKEN holders: the dashboard
 * and the CLI call these. Each route reads its request, runs one operation and shapes its answer;
 * plaintext keys arrive in request bodies and go only to the key file.
 */
export function createAdminRouter(ops: KeywardenOps): Router {
  const router = new Router({ prefix: '/admin', sensitive: true });

  router.get('/pools', async (ctx) => {
    ctx.body = { pools: await ops.pools() };
  });

  router.get('/pools/:pool/keys', async (ctx) => {
    const pool = ctx.params.pool!;
    ctx.body = { pool, keys: await ops.keys(pool) };
  });

  router.post('/pools/:pool/keys', async (ctx) => {
    const parsed = addSchema.safeParse(await readJson(ctx, ADMIN_BODY_LIMIT));
    if (!parsed.success) throw badRequest('invalid_body', 'send {"key": "..."} or {"keys": ["...", ...]}');
    const keys = 'key' in parsed.data ? [parsed.data.key] : parsed.data.keys;
    const force = ctx.query.force === 'true' || ctx.query.force === '1';
    try {
      ctx.body = await ops.addKeys(ctx.params.pool!, keys, force);
    } catch (err) {
      if (err instanceof HttpError && err.code === 'invalid_key')
        throw new HttpError(err.status, err.code, `${err.message} (add ?force=true to add them anyway)`, err.extra);
      throw err;
    }
    ctx.status = 201;
  });

  router.post('/pools/:pool/check', async (ctx) => {
    const pool = ctx.params.pool!;
    ctx.body = { pool, keys: await ops.checkKeys(pool) };
  });

  router.delete('/pools/:pool/keys/:keyId', async (ctx) => {
    await ops.removeKey(ctx.params.pool!, ctx.params.keyId!);
    ctx.status = 204;
  });

  // State moves between backends and machines as a state file (keyIds only, never a key).
  router.get('/state', async (ctx) => {
    ctx.body = await ops.exportState();
  });

  router.post('/state', async (ctx) => {
    ctx.body = await ops.importState(await readJson(ctx, STATE_BODY_LIMIT));
  });

  router.post('/pools/:pool/clear-throttle', async (ctx) => {
    const pool = ctx.params.pool!;
    ctx.body = { pool, cleared: await ops.clearThrottle(pool) };
  });

  /** A state change of one key, with an optional reason: 204. */
  const keyChange = (change: KeyChange) => async (ctx: Context) => {
    let reason: string | undefined;
    if (ctx.get('content-length') && ctx.get('content-length') !== '0') {
      const parsed = reasonSchema.safeParse(await readJson(ctx));
      if (!parsed.success) throw badRequest('invalid_body', 'send nothing or {"reason": "..."}');
      reason = parsed.data.reason;
    }
    await ops.changeKey(ctx.params.pool!, ctx.params.keyId!, change, reason);
    ctx.status = 204;
  };
  router.post('/pools/:pool/keys/:keyId/disable', keyChange('disable'));
  router.post('/pools/:pool/keys/:keyId/enable', keyChange('enable'));
  router.post('/pools/:pool/keys/:keyId/reset', keyChange('reset'));

  return router;
}
