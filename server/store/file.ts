import { readFile, rename } from 'node:fs/promises';
import { atomicWrite, removeStaleTemps } from '../atomic.js';
import { CorruptStateError, deserializeState } from '../state.js';
import type { LoadResult, SnapshotSource, StateStore } from './store.js';

/** Thrown when the state file can neither be read nor moved aside; starting would risk overwriting it. */
export class StateFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateFileError';
  }
}

/**
 * JSON state in one file, written atomically (temp file, fsync, rename, fsync dir) so a crash at
 * any moment leaves the last good file whole. Writes are coalesced: while one is in flight only
 * the newest snapshot waits. A missing file is a fresh start; an unreadable one is moved aside.
 */
export class FileStore implements StateStore {
  readonly description: string;
  private writing: Promise<void> | null = null;
  private pending: { source: SnapshotSource; waiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> } | null = null;

  constructor(
    readonly path: string,
    private readonly clock: () => number = Date.now,
  ) {
    this.description = `file ${path}`;
  }

  async load(): Promise<LoadResult> {
    await removeStaleTemps(this.path);
    return this.read((why) => this.quarantine(why));
  }

  /** Loads without touching the file (no quarantine, no temp clean-up): for tools reading beside a server. */
  loadReadOnly(): Promise<LoadResult> {
    return this.read(async (why) => {
      throw new StateFileError(`STATE_FILE ${this.path} is ${why}`);
    });
  }

  /** Reads and parses the file; a missing file is empty, an unusable one goes to `onBad`. */
  private async read(onBad: (why: string) => Promise<LoadResult>): Promise<LoadResult> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return { kind: 'empty' };
      return onBad(`unreadable (${code ?? (err as Error).message})`);
    }
    try {
      const { state, dropped } = deserializeState(text);
      return { kind: 'loaded', state, dropped };
    } catch (err) {
      if (err instanceof CorruptStateError) return onBad(err.message);
      throw err;
    }
  }

  private async quarantine(error: string): Promise<LoadResult> {
    const stamp = new Date(this.clock()).toISOString().replace(/[:.]/gu, '-');
    const movedTo = `${this.path}.corrupt-${stamp}`;
    try {
      await rename(this.path, movedTo);
    } catch (err) {
      throw new StateFileError(
        `STATE_FILE ${this.path} is ${error} and could not be moved aside (${(err as NodeJS.ErrnoException).code ?? err}); refusing to start over it`,
      );
    }
    return { kind: 'quarantined', movedTo, error };
  }

  save(source: SnapshotSource): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.pending) {
        this.pending.source = source;
        this.pending.waiters.push({ resolve, reject });
      } else {
        this.pending = { source, waiters: [{ resolve, reject }] };
      }
      if (!this.writing) this.writing = this.drain();
    });
  }

  private async drain(): Promise<void> {
    while (this.pending) {
      const { source, waiters } = this.pending;
      this.pending = null;
      try {
        await atomicWrite(this.path, source());
        for (const w of waiters) w.resolve();
      } catch (err) {
        for (const w of waiters) w.reject(err);
      }
    }
    this.writing = null;
  }

  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }
}
