import type { Logger } from '../../shared/logger.js';
import { StateUnavailableError, type PoolBackend, type PoolOptions, type ReplacePool } from '../pools/contract.js';
import type { PoolPolicy } from '../pools/policy.js';
import { Pool } from '../pools/pool.js';
import type { KeyRecord, PoolState } from '../pools/records.js';
import type { Health, StateBackend } from './backend.js';
import type { StateLock } from './lock.js';
import { stateJsonChunks } from './format.js';
import { countReservedAsUsed } from './reservations.js';
import { collectGarbage } from './collect-garbage.js';

import { createSaver, type SaveOptions, type SaveSource, type Saver } from './saver.js';
import type { SavePlan, StateStore } from './store.js';

/** After reading a state of this many keys or more, a full collection at once (collect-garbage.ts). */
const BIG_STATE_KEYS = 100_000;

/** After a reservation could not be saved, how long until the next try (the disk may have room again). */
const RESERVE_RETRY_MS = 250;

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
  private reserving: Promise<void> | null = null;
  /** When (performance.now()) a reservation may be tried again after a failed one. */
  private reserveRetryAt = 0;

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

  /** One instance owns the state file (its lock): every job is this instance's. */
  async claim(): Promise<boolean> {
    return true;
  }

  createPool(name: string, policy: PoolPolicy, options: PoolOptions): PoolBackend {
    const pool = new Pool(name, policy, { ...options, reservations: true });
    pool.changes.onDirty(() => {
      this.dirtyFlag = true;
    });
    // A key about to run through its reservation: save soon, without making a handout wait.
    pool.changes.onReservationWanted(() => {
      // After the pool's operation, not inside it: a save started here would write the pool half
      // way through (one key's block asked for, the others of the same handout not yet). A failure
      // is logged by the saver; handouts that need it wait and then fail.
      if (this.saver) queueMicrotask(() => void this.reserve().catch(() => {}));
    });
    this.pools.set(name, pool);
    return pool;
  }

  /**
   * The pool made anew in memory, its keys and the old one's state (counts, blocks, pins, ledgers)
   * moved over in one synchronous step, so no handout falls between the two.
   */
  readonly replacePool: ReplacePool = (old, name, policy, options, lines, install) => {
    const now = this.options.clock();
    const state = (old as Pool).exportState();
    const pool = this.createPool(name, policy, options) as Pool;
    pool.setKeys(lines, now);
    pool.replaceState(state, now);
    install(pool);
  };

  /** Takes the state file's lock: a second server on the same file refuses to start. */
  async open(): Promise<void> {
    const lock = this.options.lock;
    if (!lock) return;
    const { tookOverFrom } = await lock.acquire();
    if (tookOverFrom !== null)
      this.options.logger.warn(
        `state: took over ${lock.path}, left by pid ${tookOverFrom}, which is no longer running`,
      );
  }

  /** After a start that failed past `open`: the lock goes. */
  async release(): Promise<void> {
    await this.options.lock?.release();
  }

  /** Loads the saved state into the pools (key files already applied) and starts the timed saves. */
  async resume(hooks: { onSave?: (seconds: number, ok: boolean) => void; serving?: boolean } = {}): Promise<void> {
    const { logger } = this.options;
    const moved = await this.store.moved?.();
    if (moved) {
      logger.warn(
        `state: ${this.store.description} was moved to ${moved.movedTo} on ${moved.at}: it holds the state as ` +
          `of then; to bring Redis's back, run npm run keys -- state export there and state import here`,
      );
      await this.store.clearMoved?.();
    }
    // What reading a big state left behind goes now, not whenever the heap next grows (RSS); once
    // loadSaved has returned, so that nothing of its frame still holds the state read.
    if ((await this.loadSaved()) >= BIG_STATE_KEYS) collectGarbage();
    this.saver = createSaver({
      source: this,
      store: this.store,
      intervalMs: this.options.intervalMs,
      logger,
      onSave: (seconds, ok) => {
        hooks.onSave?.(seconds, ok);
        // A snapshot is a new file: the lock by inode follows it (a failure leaves the lock by path).
        if (ok) void this.options.lock?.follow().catch(() => {});
      },
    });
    // Every key's first block in one save, before the first request: none waits for it. A failed
    // save is logged by the saver; handouts then ask again, and wait for it.
    const asked = hooks.serving ? [...this.pools.values()].map((pool) => pool.reserveAhead()) : [];
    if (asked.includes(true)) await this.reserve().catch(() => {});
    if (this.options.intervalMs > 0) this.saver.start();
  }

  /** Reads the saved state into the pools, saying what it found: the number of keys restored. */
  private async loadSaved(): Promise<number> {
    const { logger } = this.options;
    const loaded = await this.store.load();
    if (loaded.kind === 'loaded') {
      for (const d of loaded.dropped) logger.warn(`state: ${d}`);
      const keys = this.restore(loaded.state.pools, loaded.state.seq);
      logger.info(
        `state: resumed from ${this.store.description} (saved ${new Date(loaded.state.savedAt).toISOString()})`,
      );
      return keys;
    } else if (loaded.kind === 'quarantined' && loaded.foreign) {
      logger.warn(
        `state: ${this.store.description} holds ${loaded.error}, such as the Flask service's api_state.json; ` +
          `moved it to ${loaded.movedTo} and starting fresh (nothing of it is read: see docs/migrating.md)`,
      );
    } else if (loaded.kind === 'quarantined') {
      logger.error(
        `state: ${this.store.description} is ${loaded.error}; moved it to ${loaded.movedTo} and starting fresh`,
      );
    } else if (loaded.note) {
      logger.warn(`state: ${loaded.note}; starting fresh`);
    } else {
      logger.info(`state: nothing saved in ${this.store.description} yet; starting fresh`);
    }
    return 0;
  }

  /** Applies saved state to the pools that exist; state of pools no longer configured is dropped with a warning. */
  private restore(pools: Record<string, PoolState>, seq: number): number {
    let keys = 0;
    this.saveSeq = Math.max(this.saveSeq, seq);
    const now = this.options.clock();
    for (const [name, st] of Object.entries(pools)) {
      const pool = this.pools.get(name);
      if (!pool) {
        this.options.logger.warn(`state: pool ${name} is no longer configured; its saved state is dropped`, {
          pool: name,
        });
        continue;
      }
      try {
        const unsure = countReservedAsUsed(st, pool.clock, now);
        if (unsure.uses > 0) {
          const apps = unsure.apps > 0 ? ` and ${unsure.apps} apps' budgets` : '';
          this.options.logger.warn(
            `state: pool ${name} was not stopped cleanly; counted the ${unsure.uses} reserved uses of ` +
              `${unsure.keys} keys${apps} as used, so no limit is passed`,
            { pool: name },
          );
        }
        pool.restore(st, now);
        keys += pool.size;
      } catch (err) {
        // Nothing in a state file stops a start: this pool starts fresh, the others resume.
        this.options.logger.error(
          `state: pool ${name}'s saved state cannot be applied (${(err as Error).message}); it starts fresh`,
          { pool: name },
        );
      }
    }
    return keys;
  }

  health(): Health {
    return { ok: true };
  }

  /** Saves now if anything changed (or always, when final) and waits for the write. */
  saveNow(options: SaveOptions = {}): Promise<void> {
    if (!this.saver) throw new Error('FileBackend.saveNow before resume');
    return this.saver.saveNow(options);
  }

  /**
   * Makes every pending reservation durable: a save now, then the wait for any save in flight.
   * Callers arriving meanwhile share it. When the state cannot be saved (a full disk, EIO, a
   * read-only file system) it rejects with StateUnavailableError, and the next try waits out
   * RESERVE_RETRY_MS from the failure: callers ask again until their wait is over (registry.ts),
   * and a full disk sees a few saves a second, not one per waiting request.
   */
  reserve(): Promise<void> {
    this.reserving ??= (async () => {
      try {
        const wait = this.reserveRetryAt - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        await this.saveNow({ strict: true });
        await this.store.flush();
      } catch (err) {
        this.reserveRetryAt = performance.now() + RESERVE_RETRY_MS;
        throw err instanceof StateUnavailableError ? err : new StateUnavailableError(err);
      } finally {
        this.reserving = null;
      }
    })();
    return this.reserving;
  }

  /**
   * The final save (nothing reserved ahead), then the lock goes (kept when the save failed: the file
   * is not known good).
   */
  async close(): Promise<string> {
    this.saver?.stop();
    await this.store.flush(); // a reservation in flight lands first, so the final save is the last write
    await this.saveNow({ final: true });
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
  savePlan(final = false): SavePlan {
    // Reservations this plan writes, confirmed (the pools may serve up to them) once it is on disk.
    const written: Array<[KeyRecord, number]> = [];
    const reservedOf = (rec: KeyRecord): number | undefined => {
      if (final || rec.reserveTo <= rec.total) return undefined; // a clean stop reserves nothing ahead
      if (rec.reserveTo > rec.reserved) written.push([rec, rec.reserveTo]);
      return rec.reserveTo;
    };
    const write = (full: boolean) =>
      stateJsonChunks(
        this.options.clock(),
        ++this.saveSeq,
        [...this.pools].map(([name, pool]) => ({ name, clock: pool.clock, drain: () => pool.drain(full, final) })),
        reservedOf,
      );
    return {
      full: () => write(true),
      delta: () => (final || [...this.pools.values()].some((p) => p.needsFullSave) ? null : write(false)),
      committed: () => {
        for (const [rec, reserved] of written) if (reserved > rec.reserved) rec.reserved = reserved;
        // Keys held out of rotation for this save serve again; apps may spend what it reserved.
        for (const pool of this.pools.values()) pool.reservationsSaved(this.options.clock());
      },
    };
  }

  requireFullSave(): void {
    for (const p of this.pools.values()) p.requireFullSave();
    this.dirtyFlag = true;
  }
}
