import { join } from 'node:path';
import { realFilePath } from '../server/fs/real-path.js';
import { loadPools } from '../server/config.js';
import { KeyFiles } from '../server/keys/key-files.js';
import type { KeyChange, KeywardenOps } from '../server/ops/contract.js';
import { Operations } from '../server/ops/operations.js';
import { PoolRegistry } from '../server/pools/registry.js';
import { FileBackend } from '../server/state/file-backend.js';
import { FileStore, StateFileError } from '../server/state/file.js';
import { StateLock, StateLockedError, type ProcessProbe } from '../server/state/lock.js';
import type { StateStore } from '../server/state/store.js';
import { UpstreamSync } from '../server/upstream/sync.js';
import type { UsageFetcher } from '../server/upstream/usage-client.js';
import { createLogger } from '../shared/logger.js';
import { AppsFile, AppsFileError } from '../server/apps/file.js';
import { AuditLog } from '../server/audit/log.js';
import { offlineChecker } from './check.js';
import { CliError } from './errors.js';
import type { Target } from './target.js';

/**
 * The use cases with no server to ask: `Operations` on the pools as the key files and the state
 * file say, run from this process. How much of the files each needs:
 * - `keyFiles`: the key files alone (add, remove): the state is neither read nor written, so
 *   these work with any backend and beside a running server, which picks the edit up itself;
 * - `read`: the saved state read, never written (status, list, export);
 * - `edit`: under the state file's lock (a server that holds it is named), one change, then a
 *   full save; refused while a server runs, which owns the state and would overwrite the edit.
 */
type Access = 'keyFiles' | 'read' | 'edit';

/** A state that starts empty and is never written: the key-file use cases read no state. */
const NO_STATE: StateStore = {
  description: 'no state (key files only)',
  load: async () => ({ kind: 'empty' }),
  save: async () => {},
  flush: async () => {},
};

export class OfflineOps implements KeywardenOps {
  /** The CLI prints what it did; the use cases' log lines have nowhere to go. */
  private readonly logger = createLogger({ level: 'error', file: null, console: false });
  private realStateFile: Promise<string> | undefined;

  constructor(
    private readonly t: Target,
    private readonly deps: { probe: ProcessProbe; fetchUsage?: UsageFetcher | undefined },
    /** A server answers at t.url (without ADMIN_TOKEN, or this would not run offline). */
    private readonly serverRunning: boolean,
  ) {}

  pools() {
    return this.run('read', '', (ops) => ops.pools());
  }
  keys(pool: string) {
    return this.run('read', '', (ops) => ops.keys(pool));
  }
  exportState() {
    return this.run('read', '', (ops) => ops.exportState());
  }
  addKeys(pool: string, keys: string[], force: boolean) {
    return this.run('keyFiles', '', (ops) => ops.addKeys(pool, keys, force));
  }
  removeKey(pool: string, keyId: string) {
    return this.run('keyFiles', '', (ops) => ops.removeKey(pool, keyId));
  }
  checkKeys(pool: string) {
    return this.run('edit', 'check keys', (ops) => ops.checkKeys(pool));
  }
  changeKey(pool: string, keyId: string, change: KeyChange, reason?: string) {
    return this.run('edit', `${change} keys`, (ops) => ops.changeKey(pool, keyId, change, reason));
  }
  clearThrottle(pool: string) {
    return this.run('edit', 'clear a throttle', (ops) => ops.clearThrottle(pool));
  }
  importState(file: unknown) {
    return this.run('edit', 'import state', (ops) => ops.importState(file));
  }
  // Apps live in the apps file, not the state: edits need no lock, and a running server takes them
  // within a second. Their usage is read from the saved state.
  apps() {
    return this.run('read', '', (ops) => ops.apps());
  }
  app(name: string) {
    return this.run('read', '', (ops) => ops.app(name));
  }
  addApp(input: unknown) {
    return this.run('keyFiles', '', (ops) => ops.addApp(input));
  }
  updateApp(name: string, patch: unknown) {
    return this.run('keyFiles', '', (ops) => ops.updateApp(name, patch));
  }
  rotateApp(name: string, graceSeconds: number) {
    return this.run('keyFiles', '', (ops) => ops.rotateApp(name, graceSeconds));
  }
  removeApp(name: string) {
    return this.run('keyFiles', '', (ops) => ops.removeApp(name));
  }
  audit(since: number | undefined, limit: number) {
    return this.run('keyFiles', '', (ops) => ops.audit(since, limit));
  }

  /** STATE_FILE through its links, as the server resolves it, so both lock and read the same file. */
  private stateFile(): Promise<string> {
    this.realStateFile ??= realFilePath(this.t.stateFile).catch((err: Error) => {
      throw new CliError(`STATE_FILE ${this.t.stateFile} leads nowhere a state file can be (${err.message})`);
    });
    return this.realStateFile;
  }

  /** Runs one use case on the files, with the access it needs (`doing` names it for a refusal). */
  private async run<T>(access: Access, doing: string, use: (ops: Operations) => Promise<T>): Promise<T> {
    const { t } = this;
    if (access !== 'edit') return this.withOps(access, use);
    if (this.serverRunning)
      throw new CliError(
        `a server is running at ${t.url} without ADMIN_TOKEN; set ADMIN_TOKEN (in .env) for both to ${doing} ` +
          `while it runs`,
      );
    const stateFile = await this.stateFile();
    const moved = await new FileStore(stateFile).moved();
    if (moved) {
      throw new CliError(
        `STATE_FILE ${stateFile} was moved to ${moved.movedTo} on ${moved.at}; the server uses that now, so ` +
          `edit through it (run it with ADMIN_TOKEN, and set KEYWARDEN_URL, STATE_BACKEND=redis and ADMIN_TOKEN here)`,
      );
    }
    const lock = new StateLock(stateFile, this.deps.probe);
    await lock.acquire().catch((err: unknown) => {
      throw err instanceof StateLockedError ? new CliError(err.message) : err;
    });
    try {
      return await this.withOps(access, use);
    } finally {
      await lock.release();
    }
  }

  /** Operations on a registry of the files, closed after `use` (with `edit`, the final full save). */
  private async withOps<T>(access: Access, use: (ops: Operations) => Promise<T>): Promise<T> {
    const { t } = this;
    const file = new FileStore(await this.stateFile());
    const store: StateStore =
      access === 'keyFiles'
        ? NO_STATE
        : access === 'read'
          ? {
              description: file.description,
              load: () => file.loadReadOnly(),
              save: async () => {},
              flush: async () => {},
            }
          : file;
    const { logger } = this;
    const backend = new FileBackend(store, { clock: Date.now, logger, intervalMs: 0 });
    const { policies, upstreams } = await loadPools(t.keysDir);
    const registry = new PoolRegistry({
      policies,
      clock: Date.now,
      keyFilePath: (name) => join(t.keysDir, `${name}.txt`),
      createPool: backend.createPool.bind(backend),
    });
    const keyFiles = new KeyFiles({ keysDir: t.keysDir, registry, logger, cipher: t.cipher });
    await keyFiles.loadAll();
    await backend.resume().catch((err: unknown) => {
      throw err instanceof StateFileError ? new CliError(err.message) : err;
    });
    const apps = new AppsFile(t.appsFile);
    await apps.load().catch((err: unknown) => {
      throw err instanceof AppsFileError ? new CliError(err.message) : err;
    });
    if (access === 'read') return use(this.operations(registry, keyFiles, null, apps));
    const asker = offlineChecker(upstreams, t.upstreamTimeoutMs, this.deps.fetchUsage);
    const sync = new UpstreamSync({ registry, checker: asker.checker, logger, intervalMs: 0, claim: async () => true });
    try {
      const result = await use(this.operations(registry, keyFiles, sync, apps));
      if (access === 'edit') await backend.close(); // the final, full save
      return result;
    } finally {
      await asker.close();
    }
  }

  private operations(
    registry: PoolRegistry,
    keyFiles: KeyFiles,
    checker: UpstreamSync | null,
    apps: AppsFile,
  ): Operations {
    return new Operations({
      registry,
      keyFiles,
      checker,
      logger: this.logger,
      clock: Date.now,
      actor: 'cli',
      ip: null,
      apps,
      audit: new AuditLog(this.t.auditFile),
    });
  }
}
