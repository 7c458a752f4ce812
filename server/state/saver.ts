import type { Logger } from '../../shared/logger.js';
import { RepeatedFailure } from '../../shared/repeats.js';
import type { SavePlan, StateStore } from './store.js';

/** What a saver saves: the file backend's pools. */
export interface SaveSource {
  /** True when state changed since the last call. */
  takeDirty(): boolean;
  /** What to write; `final` for the last save before a stop (full, with nothing reserved ahead). */
  savePlan(final: boolean): SavePlan;
  /** After a failed save: make the next one a full snapshot. */
  requireFullSave(): void;
}

export interface SaveOptions {
  /** Save even when nothing changed, as the final save: a full snapshot. */
  final?: boolean;
  /** Reject when the save fails (a final save, a reservation someone waits for) instead of only logging it. */
  strict?: boolean;
}

export interface Saver {
  start(): void;
  /** Saves now if anything changed (or always, when final) and waits for the write. */
  saveNow(options?: SaveOptions): Promise<void>;
  stop(): void;
}

/**
 * Saves the source's state every `intervalMs` when it changed. A failed save is logged and
 * retried on the next tick; one slow write never stacks another (the store coalesces). A plan
 * hears when its write is on disk (`committed`).
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
  // A save that keeps failing (a full disk, a timed save every interval) is one line, then a count a minute.
  const trouble = new RepeatedFailure(deps.logger);

  const saveNow = async ({ final = false, strict = final }: SaveOptions = {}): Promise<void> => {
    if (!deps.source.takeDirty() && !final) return;
    const start = performance.now();
    try {
      const plan = deps.source.savePlan(final);
      await deps.store.save(plan);
      plan.committed?.();
      deps.onSave?.((performance.now() - start) / 1000, true);
      trouble.recovered(`state: saving to ${deps.store.description} works again`);
    } catch (err) {
      deps.onSave?.((performance.now() - start) / 1000, false);
      deps.source.requireFullSave();
      if (final) {
        // The last save (shutdown, the CLI): there is no retry, so it must not pass for done.
        deps.logger.error(`state: save to ${deps.store.description} failed: ${(err as Error).message}`);
      } else {
        trouble.failed(`state: save to ${deps.store.description} failed: ${(err as Error).message}; will retry`);
      }
      if (strict) throw err;
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
