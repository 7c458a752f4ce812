import type { Logger } from '../../shared/logger.js';
import type { SavePlan, StateStore } from './store.js';

/** What a saver saves: the file backend's pools. */
export interface SaveSource {
  /** True when state changed since the last call. */
  takeDirty(): boolean;
  savePlan(): SavePlan;
  /** After a failed save: make the next one a full snapshot. */
  requireFullSave(): void;
}

export interface Saver {
  start(): void;
  /** Saves now if anything changed (or always, with force) and waits for the write; a forced save that fails rejects. */
  saveNow(force?: boolean): Promise<void>;
  stop(): void;
}

/**
 * Saves the source's state every `intervalMs` when it changed. A failed save is logged and
 * retried on the next tick; one slow write never stacks another (the store coalesces).
 */
export function createSaver(deps: {
  source: SaveSource;
  store: StateStore;
  intervalMs: number;
  logger: Logger;
  /** Told how long each save took and whether it worked. */
  onSave?: (seconds: number, ok: boolean) => void;
}): Saver {
  let timer: NodeJS.Timeout | null = null;
  let failing = false;

  const saveNow = async (force = false): Promise<void> => {
    if (!deps.source.takeDirty() && !force) return;
    const start = performance.now();
    try {
      const plan = deps.source.savePlan();
      // A forced save (shutdown) is always full: the next start reads one compact file.
      await deps.store.save(force ? { full: plan.full, delta: () => null } : plan);
      deps.onSave?.((performance.now() - start) / 1000, true);
      if (failing) deps.logger.info(`state: saving to ${deps.store.description} works again`);
      failing = false;
    } catch (err) {
      deps.onSave?.((performance.now() - start) / 1000, false);
      deps.source.requireFullSave();
      if (force) {
        // A forced save is the last one (shutdown, the CLI): there is no retry, so it must not pass for done.
        deps.logger.error(`state: save to ${deps.store.description} failed: ${(err as Error).message}`);
        throw err;
      }
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
