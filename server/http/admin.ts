import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import type { Logger } from '../../shared/logger.js';
import { readJson } from './body.js';
import { POOL_NAME } from '../config.js';
import { badRequest, HttpError, unknownPool } from './errors.js';
import { addKeys, KeyEditError, removeKey, validateNewKeys } from '../keys/keyedit.js';
import type { PoolBackend } from '../pools/contract.js';
import type { KeyFiles } from '../keys/key-files.js';
import type { PoolRegistry } from '../pools/registry.js';
import type { PoolState } from '../pools/records.js';
import { readState, stateExport } from '../state/format.js';
import { checkRow, screenKeys, type KeyChecker } from '../upstream/screen.js';

/** Admin bodies may carry many keys at once. */
const ADMIN_BODY_LIMIT = 1024 * 1024;
/** An imported state file: 100,000 keys take about 10 MB. */
const STATE_BODY_LIMIT = 64 * 1024 * 1024;
const KEY_ID = /^[0-9a-f]{12}$/u;

const addSchema = z.union([
  z.object({ key: z.string() }).strict(),
  z
    .object({
      keys: z.array(z.string()).min(1, 'must hold at least one key').max(10_000, 'at most 10,000 keys at once'),
    })
    .strict(),
]);
/** Optional body of disable/enable/reset. */
const disableSchema = z.object({ reason: z.string().max(200).optional() }).strict();

function mapKeyEdit(err: unknown): never {
  if (err instanceof KeyEditError) {
    const status = err.code === 'duplicate_key' ? 409 : err.code === 'unknown_key' ? 404 : 400;
    throw new HttpError(status, err.code, err.message, err.keyIds.length ? { keyIds: err.keyIds } : {});
  }
  throw err;
}

/**
 * `/admin`: key management for operators (ADMIN_TOKEN). Adding and removing keys edits the
 * pool's key file atomically (other lines untouched) and reloads it at once; disable, enable and
 * reset change the key's state. Plaintext keys arrive in request bodies and go only to the file.
 */
export function createAdminRouter(deps: {
  registry: PoolRegistry;
  keyFiles: KeyFiles;
  logger: Logger;
  clock: () => number;
  upstream: KeyChecker | null;
}): Router {
  const { registry, keyFiles, logger, upstream } = deps;
  const router = new Router({ prefix: '/admin', sensitive: true });

  const poolName = (raw: string): string => {
    if (!POOL_NAME.test(raw) || !registry.has(raw)) throw unknownPool(raw);
    return raw;
  };
  const keyIdParam = (raw: string): string => {
    if (!KEY_ID.test(raw)) throw badRequest('invalid_key_id', 'keyId must be 12 lowercase hex characters');
    return raw;
  };
  router.get('/pools', async (ctx) => {
    const stats = await registry.stats({ version: '', uptimeSec: 0 }, { keys: 'none' });
    ctx.body = { pools: stats.pools.map(({ keys: _k, ...p }) => p) };
  });

  router.get('/pools/:pool/keys', async (ctx) => {
    const pool = poolName(ctx.params.pool!);
    const stats = await registry.stats({ version: '', uptimeSec: 0 }, { keys: 'all', pool });
    ctx.body = { pool, keys: stats.pools[0]!.keys };
  });

  router.post('/pools/:pool/keys', async (ctx) => {
    const pool = poolName(ctx.params.pool!);
    const parsed = addSchema.safeParse(await readJson(ctx, ADMIN_BODY_LIMIT));
    if (!parsed.success) throw badRequest('invalid_body', 'send {"key": "..."} or {"keys": ["...", ...]}');
    const keys = 'key' in parsed.data ? [parsed.data.key] : parsed.data.keys;
    const force = ctx.query.force === 'true' || ctx.query.force === '1';
    try {
      validateNewKeys(keys); // before anything is sent upstream
    } catch (err) {
      mapKeyEdit(err);
    }
    // A pool with an upstream asks it first: a key it does not know or has deactivated stays out.
    const screening = upstream ? await screenKeys(upstream, pool, keys) : null;
    if (screening && screening.refused.length > 0 && !force) {
      const ids = screening.refused.map((r) => r.keyId);
      logger.warn(
        `admin: refused to add ${ids.length} key(s) to pool ${pool} that the upstream rejects: ${ids.join(', ')}`,
        { pool },
      );
      throw new HttpError(
        422,
        'invalid_key',
        `the upstream rejects ${ids.length} of the keys ` +
          `(${screening.refused.map((r) => `${r.keyId}: ${r.reason}`).join('; ')}); ` +
          'nothing was added (add ?force=true to add them anyway)',
        { keys: screening.refused },
      );
    }
    const added = await keyFiles.edit(pool, (path) => addKeys(path, keys, keyFiles.cipher)).catch(mapKeyEdit);
    const warnings: string[] = [];
    if (screening) {
      // stats know the new keys' credits at once
      for (const { check } of screening.checks) await registry.recordUpstream(pool, check);
      if (screening.unreachable.length > 0)
        warnings.push(
          `the upstream could not be asked about ${screening.unreachable.length} key(s) ` +
            `(${screening.unreachable[0]!.reason}); added unchecked`,
        );
      if (force && screening.refused.length > 0)
        warnings.push(
          `added ${screening.refused.length} key(s) the upstream rejects, as forced: ` +
            `${screening.refused.map((r) => r.keyId).join(', ')}`,
        );
    }
    logger.info(`admin: added ${added.length} key(s) to pool ${pool}: ${added.map((a) => a.keyId).join(', ')}`, {
      pool,
    });
    for (const w of warnings) logger.warn(`admin: pool ${pool}: ${w}`, { pool });
    ctx.status = 201;
    ctx.body = { pool, added, checked: screening?.rows ?? null, warnings };
  });

  router.post('/pools/:pool/check', async (ctx) => {
    const pool = poolName(ctx.params.pool!);
    if (!upstream?.has(pool))
      throw new HttpError(
        409,
        'no_upstream',
        `pool ${pool} has no upstream to check its keys with (pools.json "upstream")`,
      );
    const checks = await upstream.checkPool(pool);
    ctx.body = { pool, keys: checks.map((c) => checkRow(c.keyId, c.masked, c.check)) };
  });

  router.delete('/pools/:pool/keys/:keyId', async (ctx) => {
    const pool = poolName(ctx.params.pool!);
    const keyId = keyIdParam(ctx.params.keyId!);
    await keyFiles.edit(pool, (path) => removeKey(path, keyId, keyFiles.cipher)).catch(mapKeyEdit);
    logger.info(`admin: removed key ${keyId} from pool ${pool}`, { pool, keyId });
    ctx.status = 204;
  });

  // State moves between backends and machines as a state file (keyIds only, never a key).
  router.get('/state', async (ctx) => {
    const pools: Record<string, PoolState> = {};
    for (const name of registry.names()) pools[name] = await registry.withPool(name, (p, now) => p.exportState(now));
    ctx.body = stateExport(pools, deps.clock());
  });

  router.post('/state', async (ctx) => {
    const body = await readJson(ctx, STATE_BODY_LIMIT);
    let parsed: ReturnType<typeof readState>;
    try {
      parsed = readState(body);
    } catch (err) {
      throw badRequest('invalid_state', `not a Keywarden state file: ${(err as Error).message}`);
    }
    const imported: string[] = [];
    const skipped: string[] = [];
    for (const [name, st] of Object.entries(parsed.state.pools)) {
      if (!registry.has(name)) {
        skipped.push(name);
        continue;
      }
      await registry.withPool(name, (p, now) => p.replaceState(st, now));
      await keyFiles.load(name, true); // membership stays the key file's
      imported.push(name);
    }
    logger.warn(
      `admin: replaced the state of ${imported.join(', ') || 'no pool'} from an import` +
        (skipped.length ? ` (not configured here: ${skipped.join(', ')})` : ''),
    );
    ctx.body = { imported, skipped, dropped: parsed.dropped };
  });

  router.post('/pools/:pool/clear-throttle', async (ctx) => {
    const pool = poolName(ctx.params.pool!);
    const inForce = await registry.withPool(pool, (p, now) => p.clearThrottle(now));
    logger.log(
      inForce ? 'warn' : 'info',
      `admin: cleared the throttle of pool ${pool}${inForce ? '' : ' (none was in force)'}`,
      { pool },
    );
    ctx.body = { pool, cleared: inForce };
  });

  /** A state change of one key: 204, or 404 when the pool has no such key. */
  const keyAction =
    (
      verb: string,
      level: 'info' | 'warn',
      apply: (p: PoolBackend, keyId: string, now: number, reason: string | undefined) => boolean | Promise<boolean>,
    ) =>
    async (ctx: Context) => {
      const pool = poolName(ctx.params.pool!);
      const keyId = keyIdParam(ctx.params.keyId!);
      let reason: string | undefined;
      if (ctx.get('content-length') && ctx.get('content-length') !== '0') {
        const parsed = disableSchema.safeParse(await readJson(ctx));
        if (!parsed.success) throw badRequest('invalid_body', 'send nothing or {"reason": "..."}');
        reason = parsed.data.reason;
      }
      const found = await registry.withPool(pool, (p, now) => apply(p, keyId, now, reason));
      if (!found) throw new HttpError(404, 'unknown_key', `pool ${pool} has no key ${keyId}`);
      logger.log(level, `admin: ${verb} key ${keyId} in pool ${pool}`, { pool, keyId });
      ctx.status = 204;
    };

  router.post(
    '/pools/:pool/keys/:keyId/disable',
    keyAction('disabled', 'warn', (p, keyId, now, reason) =>
      p.admin('disable', keyId, now, `disabled by admin${reason ? `: ${reason}` : ''}`),
    ),
  );
  router.post(
    '/pools/:pool/keys/:keyId/enable',
    keyAction('enabled', 'info', (p, keyId, now) => p.admin('enable', keyId, now)),
  );
  router.post(
    '/pools/:pool/keys/:keyId/reset',
    keyAction('reset counters of', 'info', (p, keyId, now) => p.admin('reset', keyId, now)),
  );

  return router;
}
