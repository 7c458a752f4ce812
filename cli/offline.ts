import type { PoolState } from '../server/pools/records.js';
import { KeyFiles } from '../server/keys/key-files.js';
import { PoolRegistry } from '../server/pools/registry.js';
import { loadPools } from '../server/config.js';
import { createLogger } from '../shared/logger.js';
import { FileBackend } from '../server/state/file-backend.js';
import { FileStore, StateFileError } from '../server/state/file.js';
import { StateLock, StateLockedError, type ProcessProbe } from '../server/state/lock.js';
import type { StateStore } from '../server/state/store.js';
import { join } from 'node:path';
import { CliError } from './errors.js';
import type { Target } from './target.js';

/** The CLI with no server running: the pools as the key files and the state file say. */

/** The pools as the files say: key files plus the saved state, read without moving a bad file aside. */
export async function offlineRegistry(t: Target): Promise<{ registry: PoolRegistry; backend: FileBackend }> {
  const file = new FileStore(t.stateFile);
  const readOnly: StateStore = {
    description: file.description,
    load: () => file.loadReadOnly(),
    save: (plan) => file.save(plan),
    flush: () => file.flush(),
  };
  const logger = createLogger({ level: 'error', file: null, console: false });
  const backend = new FileBackend(readOnly, { clock: Date.now, logger, intervalMs: 0 });
  const registry = new PoolRegistry({
    policies: (await loadPools(t.keysDir)).policies,
    clock: Date.now,
    keyFilePath: (name) => join(t.keysDir, `${name}.txt`),
    createPool: backend.createPool.bind(backend),
  });
  await new KeyFiles({ keysDir: t.keysDir, registry, logger, cipher: t.cipher }).loadAll();
  await backend.resume().catch((err: unknown) => {
    throw err instanceof StateFileError ? new CliError(err.message) : err;
  });
  return { registry, backend };
}

/** Every pool's state as the offline registry holds it. */
export async function exportOffline({ registry }: { registry: PoolRegistry }): Promise<Record<string, PoolState>> {
  const pools: Record<string, PoolState> = {};
  for (const name of registry.names()) pools[name] = await registry.withPool(name, (p, now) => p.exportState(now));
  return pools;
}

/**
 * Changes the saved state with no server running: under the state file's lock (a server that
 * holds it is named), one change, then a full save.
 */
export async function editStateOffline<T>(
  t: Target,
  probe: ProcessProbe,
  change: (registry: PoolRegistry) => Promise<T>,
): Promise<T> {
  const moved = await new FileStore(t.stateFile).moved();
  if (moved) {
    throw new CliError(
      `STATE_FILE ${t.stateFile} was moved to ${moved.movedTo} on ${moved.at}; the server uses that now, so ` +
        `edit through it (run it with ADMIN_TOKEN, and set KEYWARDEN_URL, STATE_BACKEND=redis and ADMIN_TOKEN here)`,
    );
  }
  const lock = new StateLock(t.stateFile, probe);
  await lock.acquire().catch((err: unknown) => {
    throw err instanceof StateLockedError ? new CliError(err.message) : err;
  });
  try {
    const { registry, backend } = await offlineRegistry(t);
    const result = await change(registry);
    await backend.close(); // the final, full save
    return result;
  } finally {
    await lock.release();
  }
}
