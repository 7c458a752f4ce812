import { readFile, rename, stat, unlink } from 'node:fs/promises';
import { appendLine, atomicWrite, NODE_FS, removeStaleTemps, type WriteFs } from '../fs/atomic.js';
import { applyJournalEntry, deserializeState } from './format.js';
import { CorruptStateError, ForeignStateError } from './errors.js';
import type { LoadResult, SavePlan, StateStore } from './store.js';

/** Snapshots smaller than this are always rewritten whole: a journal only pays off for big state. */
export const DEFAULT_JOURNAL_MIN_BYTES = 256 * 1024;
/** The journal is folded into a fresh snapshot once it outgrows the snapshot this many times. */
const JOURNAL_MAX_RATIO = 2;

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
 *
 * Big state (a snapshot of at least `journalMinBytes`) is not rewritten on every save: saves
 * append a journal entry with just the keys that changed to `<path>.journal` (one JSON line,
 * fsynced), and the journal is folded into a fresh snapshot once it outgrows the snapshot. Every
 * save carries a sequence number; on load, journal entries newer than the snapshot are applied in
 * order, and a torn last line (a crash mid-append) is ignored.
 */
export class FileStore implements StateStore {
  readonly description: string;
  private writing: Promise<void> | null = null;
  private pending: { plan: SavePlan; waiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> } | null =
    null;

  readonly journalPath: string;
  private snapshotBytes = 0;
  private journalBytes = 0;

  constructor(
    readonly path: string,
    private readonly clock: () => number = Date.now,
    private readonly journalMinBytes = DEFAULT_JOURNAL_MIN_BYTES,
    /** The file operations writes use (tests inject failing ones). */
    private readonly fs: WriteFs = NODE_FS,
  ) {
    this.description = `file ${path}`;
    this.journalPath = `${path}.journal`;
  }

  async load(): Promise<LoadResult> {
    await removeStaleTemps(this.path, this.fs);
    return this.read((why, foreign = false) => this.setAside(why, foreign));
  }

  /** Loads without touching the file (no quarantine, no temp clean-up): for tools reading beside a server. */
  loadReadOnly(): Promise<LoadResult> {
    return this.read(async (why) => {
      throw new StateFileError(`STATE_FILE ${this.path} is ${why}`);
    });
  }

  /** Reads and parses the file; a missing file is empty, an unusable one goes to `onBad`. */
  private async read(onBad: (why: string, foreign?: boolean) => Promise<LoadResult>): Promise<LoadResult> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return { kind: 'empty' };
      return onBad(`unreadable (${code ?? (err as Error).message})`);
    }
    // An empty file (made by hand, or a link to a file made empty) holds nothing to lose: a fresh start.
    if (text.trim() === '') return { kind: 'empty', note: `${this.description} is empty` };
    let loaded: LoadResult;
    try {
      const { state, dropped } = deserializeState(text, this.clock());
      loaded = { kind: 'loaded', state, dropped };
    } catch (err) {
      // Nothing in a state file stops a start: what cannot be read at all is moved aside.
      if (err instanceof ForeignStateError) return onBad(err.message, true);
      return onBad(err instanceof CorruptStateError ? err.message : `unreadable (${(err as Error).message})`);
    }
    this.snapshotBytes = Buffer.byteLength(text, 'utf8');
    return this.applyJournal(loaded);
  }

  /** Applies journal entries newer than the snapshot; a bad entry stops the replay (reported, not thrown). */
  private async applyJournal(loaded: LoadResult & { kind: 'loaded' }): Promise<LoadResult> {
    let text: string;
    try {
      text = await readFile(this.journalPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return loaded;
      return {
        ...loaded,
        dropped: [
          ...loaded.dropped,
          `journal ${this.journalPath} cannot be read (${(err as NodeJS.ErrnoException).code}); using the ` +
            `snapshot alone`,
        ],
      };
    }
    this.journalBytes = Buffer.byteLength(text, 'utf8');
    const lines = text.split('\n');
    const complete = text.endsWith('\n');
    let state = loaded.state;
    const dropped = [...loaded.dropped];
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      if (line === '') continue;
      const last = i === lines.length - 1;
      try {
        if (last && !complete) throw new CorruptStateError('incomplete');
        const entry = deserializeState(line, this.clock());
        dropped.push(...entry.dropped.map((d) => `journal entry ${i + 1}: ${d}`));
        if (entry.state.seq > state.seq) state = applyJournalEntry(state, entry.state);
      } catch (err) {
        dropped.push(
          last
            ? `journal: the last entry was cut short (a crash while saving); the state is as of the entry before`
            : `journal entry ${i + 1} is unreadable (${(err as Error).message}); it and later entries were not applied`,
        );
        break;
      }
    }
    return { kind: 'loaded', state, dropped };
  }

  /** Moves the file aside (`.corrupt-<time>`, or `.not-keywarden-<time>` for another program's) so a start goes on. */
  private async setAside(error: string, foreign: boolean): Promise<LoadResult> {
    const stamp = new Date(this.clock()).toISOString().replace(/[:.]/gu, '-');
    const movedTo = `${this.path}.${foreign ? 'not-keywarden' : 'corrupt'}-${stamp}`;
    try {
      await rename(this.path, movedTo);
      // A journal is meaningless without its snapshot.
      await rename(this.journalPath, `${movedTo}.journal`).catch(() => {});
    } catch (err) {
      throw new StateFileError(
        `STATE_FILE ${this.path} is ${error} and could not be moved aside ` +
          `(${(err as NodeJS.ErrnoException).code ?? err}); refusing to start over it`,
      );
    }
    return { kind: 'quarantined', movedTo, error, foreign };
  }

  save(plan: SavePlan): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.pending) {
        this.pending.plan = plan;
        this.pending.waiters.push({ resolve, reject });
      } else {
        this.pending = { plan, waiters: [{ resolve, reject }] };
      }
      if (!this.writing) this.writing = this.drain();
    });
  }

  private async drain(): Promise<void> {
    while (this.pending) {
      const { plan, waiters } = this.pending;
      this.pending = null;
      try {
        await this.write(plan);
        for (const w of waiters) w.resolve();
      } catch (err) {
        for (const w of waiters) w.reject(err);
      }
    }
    this.writing = null;
  }

  private async write(plan: SavePlan): Promise<void> {
    const journal =
      this.snapshotBytes >= this.journalMinBytes && this.journalBytes < this.snapshotBytes * JOURNAL_MAX_RATIO;
    const delta = journal ? plan.delta() : null;
    if (delta) {
      this.journalBytes += await appendLine(this.journalPath, delta, this.fs);
      return;
    }
    this.snapshotBytes = await atomicWrite(this.path, plan.full(), this.fs);
    // The new snapshot holds everything the journal did (its sequence number is higher).
    await unlink(this.journalPath).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    this.journalBytes = 0;
  }

  /**
   * Marks this state file as moved to another backend (Redis): `<path>.moved`, saying where and
   * when. The CLI then refuses to edit the stale file, and a file backend started on it warns.
   */
  async markMoved(where: string, at: number): Promise<void> {
    await atomicWrite(
      this.movedPath,
      `${JSON.stringify({ movedTo: where, at: new Date(at).toISOString() })}\n`,
      this.fs,
    );
  }

  /** Where and when this state file was moved, or null. */
  async moved(): Promise<{ movedTo: string; at: string } | null> {
    try {
      return JSON.parse(await readFile(this.movedPath, 'utf8')) as { movedTo: string; at: string };
    } catch {
      return null;
    }
  }

  /** The file is in use again (a file backend started on it): it is no longer moved. */
  async clearMoved(): Promise<void> {
    await unlink(this.movedPath).catch(() => {});
  }

  private get movedPath(): string {
    return `${this.path}.moved`;
  }

  /** Sizes on disk now, for tests and logs. */
  async sizes(): Promise<{ snapshotBytes: number; journalBytes: number }> {
    const size = (p: string) =>
      stat(p).then(
        (s) => s.size,
        () => 0,
      );
    return { snapshotBytes: await size(this.path), journalBytes: await size(this.journalPath) };
  }

  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }
}
