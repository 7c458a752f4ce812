import type { Logger } from '../../shared/logger.js';
import type { PoolBackend, PoolOptions } from '../pools/contract.js';
import type { PoolPolicy } from '../pools/policy.js';
import { Pool } from '../pools/pool.js';
import type { PoolState } from '../pools/records.js';
import type { Health, StateBackend } from './backend.js';
import type { StateLock } from './lock.js';
import { poolJsonChunks, STATE_VERSION, windowStartsAt } from './format.js';
import { createSaver, type SaveSource, type Saver } from './saver.js';
import type { SavePlan, StateStore } from './store.js';

/**
 * The file backend: pools in memory (`Pool`), saved to a StateStore (the state file, or memory in
 * tests) every `intervalMs` when changed (0: only when asked, as the CLI does), and once more at
 * shutdown.
 */
export class FileBackend implements StateBackend, SaveSource {
  readonly description: string;
  private readonly pools = new Map<string, Pool>();
  private dirtyFlag = false;
  /** Sequence number of the last save begun (continues from the loaded state's). */
  private saveSeq = 0;
  private saver: Saver | null = null;

  constructor(
    private readonly store: StateStore,
    private readonly options: {
      clock: () => number;
      logger: Logger;
      intervalMs: number;
      /** One writer per state file; none for a store that is not a file (tests' memory). */
      lock?: StateLock;
    },
  ) {
    this.description = store.description;
  }

  createPool(name: string, policy: PoolPolicy, options: PoolOptions): PoolBackend {
    const pool = new Pool(name, policy, options);
    pool.changes.onDirty(() => {
      this.dirtyFlag = true;
    });
    this.pools.set(name, pool);
    return pool;
  }

  /** Takes the state file's lock: a second server on the same file refuses to start. */
  async open(): Promise<void> {
    const lock = this.options.lock;
    if (!lock) return;
    const { tookOverFrom } = await lock.acquire();
    if (tookOverFrom !== null) this.options.logger.warn(`state: took over ${lock.path}, left by pid ${tookOverFrom}, which is no longer running`);
  }

  /** Loads the saved state into the pools (key files already applied) and starts the timed saves. */
  async resume(hooks: { onSave?: (seconds: number, ok: boolean) => void } = {}): Promise<void> {
    const { logger } = this.options;
    const loaded = await this.store.load();
    if (loaded.kind === 'loaded') {
      for (const d of loaded.dropped) logger.warn(`state: ${d}`);
      this.restore(loaded.state.pools, loaded.state.seq);
      logger.info(`state: resumed from ${this.store.description} (saved ${new Date(loaded.state.savedAt).toISOString()})`);
    } else if (loaded.kind === 'quarantined') {
      logger.error(`state: ${this.store.description} is ${loaded.error}; moved it to ${loaded.movedTo} and starting fresh`);
    } else {
      logger.info(`state: nothing saved in ${this.store.description} yet; starting fresh`);
    }
    this.saver = createSaver({ source: this, store: this.store, intervalMs: this.options.intervalMs, logger, onSave: hooks.onSave });
    if (this.options.intervalMs > 0) this.saver.start();
  }

  /** Applies saved state to the pools that exist; state of pools no longer configured is dropped with a warning. */
  private restore(pools: Record<string, PoolState>, seq: number): void {
    this.saveSeq = Math.max(this.saveSeq, seq);
    const now = this.options.clock();
    for (const [name, st] of Object.entries(pools)) {
      const pool = this.pools.get(name);
      if (!pool) {
        this.options.logger.warn(`state: pool ${name} is no longer configured; its saved state is dropped`, { pool: name });
        continue;
      }
      pool.restore(st, now);
    }
  }

  health(): Health {
    return { ok: true };
  }

  /** Saves now if anything changed (or always, with force: a full snapshot) and waits for the write. */
  saveNow(force = false): Promise<void> {
    if (!this.saver) throw new Error('FileBackend.saveNow before resume');
    return this.saver.saveNow(force);
  }

  /** The final save, then the lock goes (kept when the save failed: the file is not known good). */
  async close(): Promise<string> {
    this.saver?.stop();
    await this.saveNow(true);
    await this.options.lock?.release();
    return 'state saved';
  }

  // ---------------------------------------------------------------- SaveSource

  takeDirty(): boolean {
    const was = this.dirtyFlag;
    this.dirtyFlag = false;
    return was;
  }

  /**
   * What the next save writes: the whole state file, or a journal entry with only the keys
   * changed since the last save. Both are pulled lazily, when the store starts writing, and
   * numbered so a journal entry applies on top of the snapshot it follows.
   */
  savePlan(): SavePlan {
    const write = function* (this: FileBackend, full: boolean) {
      const now = this.options.clock();
      yield `{"version":${STATE_VERSION},"savedAt":${now},"seq":${++this.saveSeq},"pools":{`;
      let first = true;
      for (const [name, pool] of this.pools) {
        yield `${first ? '' : ','}${JSON.stringify(name)}:`;
        first = false;
        const starts = windowStartsAt(pool.clock, now);
        if (full) {
          const { records, retired } = pool.takeAll();
          yield* poolJsonChunks(pool.header(), records, retired, starts);
        } else yield* poolJsonChunks(pool.header(), pool.changes.takeChanged(), new Map(), starts);
      }
      yield '}}';
    }.bind(this);
    return {
      full: () => write(true),
      delta: () => ([...this.pools.values()].some((p) => p.changes.fullSaveNeeded) ? null : write(false)),
    };
  }

  requireFullSave(): void {
    for (const p of this.pools.values()) p.changes.requireFull();
    this.dirtyFlag = true;
  }
}
