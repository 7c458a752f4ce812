import type { Logger } from '../../shared/logger.js';
import type { PoolRegistry } from '../pools/registry.js';
import type { StateStore } from './store.js';

export interface Saver {
  start(): void;
  /** Saves now if anything changed (or always, with force) and waits for the write. */
  saveNow(force?: boolean): Promise<void>;
  stop(): void;
}

/**
 * Saves the registry's state every `intervalMs` when it changed. A failed save is logged and
 * retried on the next tick; one slow write never stacks another (the store coalesces).
 */
export function createSaver(deps: {
  registry: PoolRegistry;
  store: StateStore;
  intervalMs: number;
  logger: Logger;
  /** Told how long each save took and whether it worked. */
  onSave?: (seconds: number, ok: boolean) => void;
}): Saver {
  let timer: NodeJS.Timeout | null = null;
  let failing = false;

  const saveNow = async (force = false): Promise<void> => {
    if (!deps.registry.takeDirty() && !force) return;
    const start = performance.now();
    try {
      const plan = deps.registry.savePlan();
      // A forced save (shutdown) is always full: the next start reads one compact file.
      await deps.store.save(force ? { full: plan.full, delta: () => null } : plan);
      deps.onSave?.((performance.now() - start) / 1000, true);
      if (failing) deps.logger.info(`state: saving to ${deps.store.description} works again`);
      failing = false;
    } catch (err) {
      deps.onSave?.((performance.now() - start) / 1000, false);
      deps.registry.requireFullSave();
      if (!failing) deps.logger.error(`state: save to ${deps.store.description} failed: ${(err as Error).message}; will retry`);
      failing = true;
    }
  };

  return {
    start() {
      if (timer) return;
      timer = setInterval(() => void saveNow(), deps.intervalMs);
      timer.unref();
    },
    saveNow,
    stop() {
      if (timer) clearInterval(timer);
      timer = null;
    },
  };
}
