import type { Logger } from '../../shared/logger.js';
import type { KeyStats } from '../../shared/stats.js';
import { POOL_NAME } from '../config.js';
import { badRequest, HttpError, unknownPool } from '../errors.js';
import type { KeyFiles } from '../keys/key-files.js';
import { addKeys, KeyEditError, removeKey, validateNewKeys } from '../keys/keyedit.js';
import type { PoolState } from '../pools/records.js';
import type { PoolRegistry } from '../pools/registry.js';
import { stateExport, type StateExport } from '../state/format.js';
import { readState } from '../state/read-state.js';
import { WindowClock } from '../pools/windows.js';
import { checkRow, screenKeys, type CheckRow, type KeyChecker } from '../upstream/screen.js';
import type { AppReport, KeyChange, KeysAdded, KeywardenOps, PoolSummary, StateImported } from './contract.js';
import type { AppsFile } from '../apps/file.js';
import type { AppTraffic } from '../apps/traffic.js';
import type { AuditEntry, AuditLog } from '../audit/log.js';
import { AppOperations } from './apps.js';

const KEY_ID = /^[0-9a-f]{12}$/u;
const NO_SERVER = { version: '', uptimeSec: 0 };

export interface OperationsDeps {
  registry: PoolRegistry;
  keyFiles: KeyFiles;
  /** The pools' upstreams (checks before an add, `checkKeys`), or null: none configured. */
  checker: KeyChecker | null;
  logger: Logger;
  clock: () => number;
  /** Who acts, at the head of each log line and in the audit log (an admin app's name, "admin", "cli"). */
  actor: string;
  /** The caller's address, for the audit log (null: the CLI). */
  ip?: string | null;
  /** The named apps (APPS_FILE); null: none. */
  apps?: AppsFile | null;
  /** Apps' requests on this instance, shown with their usage. */
  traffic?: AppTraffic | null;
  /** Where every admin action is recorded (AUDIT_FILE); null: nowhere. */
  audit?: AuditLog | null;
}

/** Errors of a file system that cannot take a write now: a full disk, a failing one, a read-only one. */
const STORAGE_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EACCES', 'EPERM']);

/** A key-file edit's refusal as the operator hears it; a file system that fails it is a 503, never a 500. */
function keyEditError(err: unknown): never {
  if (err instanceof KeyEditError) {
    const status = err.code === 'duplicate_key' ? 409 : err.code === 'unknown_key' ? 404 : 400;
    throw new HttpError(status, err.code, err.message, err.keyIds.length ? { keyIds: err.keyIds } : {});
  }
  const code = (err as NodeJS.ErrnoException).code;
  if (code && STORAGE_ERRORS.has(code))
    throw new HttpError(
      503,
      'storage_unavailable',
      `the key file could not be written (${code}); nothing was changed`,
      { retryAfter: 5 },
      { 'Retry-After': '5' },
    );
  throw err;
}

/**
 * The use cases (contract.ts) on a registry and its key files: a server's own, or the CLI's
 * offline ones. Key files change through `keyFiles.edit` (atomic, reloaded at once); key and pool
 * state through the registry. Every change is logged, by keyId, never a key.
 */
export class Operations implements KeywardenOps {
  private readonly appOps: AppOperations;

  constructor(private readonly deps: OperationsDeps) {
    this.appOps = new AppOperations({
      apps: deps.apps ?? null,
      registry: deps.registry,
      traffic: deps.traffic ?? null,
      clock: deps.clock,
    });
  }

  /** The same operations for another actor (an admin request: the app or token that made it, and its address). */
  as(actor: string, ip: string | null): Operations {
    return new Operations({ ...this.deps, actor, ip });
  }

  // ---------------------------------------------------------------- audited: every change, by whom, and how it went

  /**
   * Runs an admin action and appends its line to the audit log (ok, or the error code it failed
   * with) before its answer goes out. The target names pools, keyIds and apps, never a key.
   */
  private async audited<T>(action: string, target: string, run: () => Promise<T>): Promise<T> {
    let result = 'ok';
    try {
      return await run();
    } catch (err) {
      result = err instanceof HttpError ? err.code : 'internal_error';
      throw err;
    } finally {
      const { audit, actor, ip, logger, clock } = this.deps;
      await audit
        ?.append({ actor, action, target, result, ip: ip ?? null }, clock())
        .catch((e: Error) =>
          logger.error(
            `audit: ${audit.path} could not be written (${e.message}): ${actor} ${action} ${target} ${result}`,
          ),
        );
    }
  }

  addKeys(pool: string, keys: string[], force: boolean): Promise<KeysAdded> {
    return this.audited('key.add', pool, () => this.addKeysNow(pool, keys, force));
  }

  checkKeys(pool: string): Promise<CheckRow[]> {
    return this.audited('key.check', pool, () => this.checkKeysNow(pool));
  }

  removeKey(pool: string, keyId: string): Promise<void> {
    return this.audited('key.remove', `${pool}/${keyId}`, () => this.removeKeyNow(pool, keyId));
  }

  changeKey(pool: string, keyId: string, change: KeyChange, reason?: string): Promise<void> {
    return this.audited(`key.${change}`, `${pool}/${keyId}`, () => this.changeKeyNow(pool, keyId, change, reason));
  }

  clearThrottle(pool: string): Promise<boolean> {
    return this.audited('pool.clear_throttle', pool, () => this.clearThrottleNow(pool));
  }

  importState(file: unknown): Promise<StateImported> {
    return this.audited('state.import', 'state', () => this.importStateNow(file));
  }

  apps(): Promise<AppReport[]> {
    return this.appOps.list();
  }

  app(name: string): Promise<AppReport> {
    return this.appOps.show(name);
  }

  addApp(input: unknown): Promise<AppReport & { token: string }> {
    const name = (input as { name?: unknown } | null)?.name;
    return this.audited('app.add', `app ${typeof name === 'string' ? name.slice(0, 64) : '?'}`, async () => {
      const made = await this.appOps.add(input);
      this.log('info', `made app ${made.name} (pools ${JSON.stringify(made.pools)}, mode ${made.mode})`);
      return made;
    });
  }

  updateApp(name: string, patch: unknown): Promise<AppReport> {
    const fields = Object.keys((patch as object | null) ?? {});
    const action =
      fields.length === 1 && fields[0] === 'disabled'
        ? (patch as { disabled: unknown }).disabled === true
          ? 'app.disable'
          : 'app.enable'
        : 'app.update';
    return this.audited(action, `app ${name.slice(0, 64)}`, async () => {
      const app = await this.appOps.update(name, patch);
      this.log('info', `changed app ${name}: ${fields.join(', ') || 'nothing'}`);
      return app;
    });
  }

  rotateApp(name: string, graceSeconds: number): Promise<{ token: string; graceUntil: string | null }> {
    return this.audited('app.rotate', `app ${name.slice(0, 64)}`, async () => {
      const rotated = await this.appOps.rotate(name, graceSeconds);
      this.log('info', `rotated the token of app ${name} (old one valid until ${rotated.graceUntil ?? 'now'})`);
      return rotated;
    });
  }

  removeApp(name: string): Promise<void> {
    return this.audited('app.remove', `app ${name.slice(0, 64)}`, async () => {
      await this.appOps.remove(name);
      this.log('warn', `removed app ${name}`);
    });
  }

  async audit(since: number | undefined, limit: number): Promise<AuditEntry[]> {
    return (await this.deps.audit?.read({ since, limit })) ?? [];
  }

  // ---------------------------------------------------------------- the use cases

  async pools(): Promise<PoolSummary[]> {
    const stats = await this.deps.registry.stats(NO_SERVER, { keys: 'none' });
    return stats.pools.map(({ keys: _keys, ...pool }) => pool);
  }

  async keys(pool: string): Promise<KeyStats[]> {
    this.pool(pool);
    return (await this.deps.registry.stats(NO_SERVER, { keys: 'all', pool })).pools[0]!.keys;
  }

  private async addKeysNow(pool: string, keys: string[], force: boolean): Promise<KeysAdded> {
    const { keyFiles, checker, registry } = this.deps;
    this.pool(pool);
    try {
      validateNewKeys(keys); // before anything is sent upstream
    } catch (err) {
      keyEditError(err);
    }
    // A pool with an upstream asks it first: a key it does not know or has deactivated stays out.
    const screening = checker ? await screenKeys(checker, pool, keys) : null;
    if (screening && screening.refused.length > 0 && !force) {
      const ids = screening.refused.map((r) => r.keyId);
      this.log(
        'warn',
        `refused to add ${ids.length} key(s) to pool ${pool} that the upstream rejects: ${ids.join(', ')}`,
        {
          pool,
        },
      );
      throw new HttpError(
        422,
        'invalid_key',
        `the upstream rejects ${ids.length} of the keys ` +
          `(${screening.refused.map((r) => `${r.keyId}: ${r.reason}`).join('; ')}); nothing was added`,
        { keys: screening.refused },
      );
    }
    const added = await keyFiles.edit(pool, (path) => addKeys(path, keys, keyFiles.cipher)).catch(keyEditError);
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
            `${screening.refused.map((r) => `${r.keyId} (${r.masked}): ${r.reason}`).join('; ')}`,
        );
    }
    this.log('info', `added ${added.length} key(s) to pool ${pool}: ${added.map((a) => a.keyId).join(', ')}`, {
      pool,
    });
    for (const w of warnings) this.log('warn', `pool ${pool}: ${w}`, { pool });
    return { pool, added, checked: screening?.rows ?? null, warnings };
  }

  private async checkKeysNow(pool: string): Promise<CheckRow[]> {
    const { checker } = this.deps;
    this.pool(pool);
    if (!checker?.has(pool))
      throw new HttpError(
        409,
        'no_upstream',
        `pool ${pool} has no upstream to check its keys with (pools.json "upstream")`,
      );
    return (await checker.checkPool(pool)).map((c) => checkRow(c.keyId, c.masked, c.check));
  }

  private async removeKeyNow(pool: string, keyId: string): Promise<void> {
    const { keyFiles } = this.deps;
    this.pool(pool);
    this.keyId(keyId);
    await keyFiles.edit(pool, (path) => removeKey(path, keyId, keyFiles.cipher)).catch(keyEditError);
    this.log('info', `removed key ${keyId} from pool ${pool}`, { pool, keyId });
  }

  private async changeKeyNow(pool: string, keyId: string, change: KeyChange, reason?: string): Promise<void> {
    this.pool(pool);
    this.keyId(keyId);
    const why = change === 'disable' ? `disabled by ${this.deps.actor}${reason ? `: ${reason}` : ''}` : undefined;
    const found = await this.deps.registry.withPool(pool, (p, now) => p.admin(change, keyId, now, why));
    if (!found) throw new HttpError(404, 'unknown_key', `pool ${pool} has no key ${keyId}`);
    const verb = { disable: 'disabled', enable: 'enabled', reset: 'reset counters of' }[change];
    this.log(change === 'disable' ? 'warn' : 'info', `${verb} key ${keyId} in pool ${pool}`, { pool, keyId });
  }

  private async clearThrottleNow(pool: string): Promise<boolean> {
    this.pool(pool);
    const inForce = await this.deps.registry.withPool(pool, (p, now) => p.clearThrottle(now));
    this.log(
      inForce ? 'warn' : 'info',
      `cleared the throttle of pool ${pool}${inForce ? '' : ' (none was in force)'}`,
      {
        pool,
      },
    );
    return inForce;
  }

  async exportState(): Promise<StateExport> {
    const { registry, clock } = this.deps;
    const pools: Array<{ name: string; state: PoolState; clock: WindowClock }> = [];
    for (const name of registry.names()) {
      const state = await registry.withPool(name, (p, now) => p.exportState(now));
      pools.push({ name, state, clock: new WindowClock(registry.timeZoneOf(name)) });
    }
    return stateExport(pools, clock());
  }

  private async importStateNow(file: unknown): Promise<StateImported> {
    const { registry, keyFiles } = this.deps;
    let parsed: ReturnType<typeof readState>;
    try {
      parsed = readState(file, this.deps.clock());
    } catch (err) {
      throw badRequest('invalid_state', (err as Error).message); // names what is wrong with it
    }
    const imported: string[] = [];
    for (const [name, state] of Object.entries(parsed.state.pools)) {
      if (!registry.has(name)) continue;
      await registry.withPool(name, (p, now) => p.replaceState(state, now));
      await keyFiles.load(name, true); // membership stays the key file's
      imported.push(name);
    }
    // Named from the file as sent: a pool called `__proto__` never makes it into a parsed object.
    const named = Object.keys((file as { pools?: object }).pools ?? {});
    const skipped = named.filter((name) => !registry.has(name));
    this.log(
      'warn',
      `replaced the state of ${imported.join(', ') || 'no pool'} from an import` +
        (skipped.length ? ` (not configured here: ${skipped.join(', ')})` : ''),
    );
    return { imported, skipped, dropped: parsed.dropped };
  }

  /** A pool this registry has, or a 404 naming it. */
  private pool(name: string): void {
    if (!POOL_NAME.test(name) || !this.deps.registry.has(name)) throw unknownPool(name);
  }

  private keyId(keyId: string): void {
    if (!KEY_ID.test(keyId)) throw badRequest('invalid_key_id', 'keyId must be 12 lowercase hex characters');
  }

  private log(level: 'info' | 'warn', message: string, meta: Record<string, unknown> = {}): void {
    this.deps.logger.log(level, `${this.deps.actor}: ${message}`, meta);
  }
}
