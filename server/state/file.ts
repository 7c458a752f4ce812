import { createReadStream } from 'node:fs';
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { appendLine, atomicWrite, NODE_FS, removeStaleTemps, type WriteFs } from '../fs/atomic.js';
import type { StateFile } from './format.js';
import { deserializeState, NotStreamable, readWhole, StateParser, type ParsedState } from './state-parser.js';
import { CorruptStateError, ForeignStateError } from './errors.js';
import type { LoadResult, SavePlan, StateStore } from './store.js';

/** Snapshots smaller than this are always rewritten whole: a journal only pays off for big state. */
export const DEFAULT_JOURNAL_MIN_BYTES = 256 * 1024;
/** The journal is folded into a fresh snapshot once it outgrows the snapshot this many times. */
const JOURNAL_MAX_RATIO = 2;
/** Bytes of the state file read at a time: about the most of its text held at once while it loads. */
const READ_PIECE_BYTES = 1 << 20;

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
  /** How the last load read the snapshot (tests, diagnostics): streamed in pieces, or whole. */
  lastRead: { streamed: boolean; pieces: number; maxHeldChars: number } | null = null;
  /** Bytes a piece when streaming the snapshot and journal in (tests set it small). */
  readPieceBytes = READ_PIECE_BYTES;
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
    let parsed: ParsedState | null;
    try {
      parsed = await this.parseFile();
    } catch (err) {
      // Nothing in a state file stops a start: what cannot be read at all is moved aside.
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return { kind: 'empty' };
      if (err instanceof ForeignStateError) return onBad(err.message, true);
      if (err instanceof CorruptStateError) return onBad(err.message);
      return onBad(`unreadable (${code ?? (err as Error).message})`);
    }
    // An empty file (made by hand, or a link to a file made empty) holds nothing to lose: a fresh start.
    if (!parsed) return { kind: 'empty', note: `${this.description} is empty` };
    return this.applyJournal({ kind: 'loaded', ...parsed });
  }

  /**
   * The snapshot streamed through the parser (state-parser.ts) a piece at a time, or read whole
   * when it is laid out otherwise or is not JSON; null when it holds nothing but white space.
   */
  private async parseFile(): Promise<ParsedState | null> {
    const now = this.clock();
    const parser = new StateParser(now);
    const stream = createReadStream(this.path, { encoding: 'utf8', highWaterMark: this.readPieceBytes });
    let pieces = 0;
    try {
      for await (const piece of stream) {
        pieces++;
        parser.feed(piece as string);
      }
      const parsed = parser.end();
      this.snapshotBytes = stream.bytesRead;
      this.lastRead = { streamed: true, pieces, maxHeldChars: parser.maxHeld };
      return parsed;
    } catch (err) {
      if (!(err instanceof NotStreamable || err instanceof SyntaxError)) throw err;
    } finally {
      stream.destroy();
    }
    const text = await readFile(this.path, 'utf8');
    this.lastRead = { streamed: false, pieces: 1, maxHeldChars: text.length };
    if (text.trim() === '') return null;
    const parsed = readWhole(text, now);
    this.snapshotBytes = Buffer.byteLength(text, 'utf8');
    return parsed;
  }

  /**
   * Applies journal entries newer than the snapshot, streamed a line at a time; a bad entry
   * stops the replay (reported, not thrown), and a torn last line (a crash mid-append) is ignored.
   */
  private async applyJournal(loaded: LoadResult & { kind: 'loaded' }): Promise<LoadResult> {
    const dropped = [...loaded.dropped];
    let state = loaded.state;
    let size: number;
    let complete: boolean;
    try {
      size = (await stat(this.journalPath)).size;
      complete = size === 0 || (await lastByte(this.journalPath, size)) === '\n';
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return loaded;
      dropped.push(`journal ${this.journalPath} cannot be read (${code}); using the snapshot alone`);
      return { ...loaded, dropped };
    }
    this.journalBytes = size;
    const stream = createReadStream(this.journalPath, { encoding: 'utf8', highWaterMark: this.readPieceBytes });
    const lines = createInterface({ input: stream, crlfDelay: Infinity });
    /** Applies line `n` (1-based); false once the replay stops. */
    const apply = (line: string, n: number, final: boolean): boolean => {
      if (line === '') return true;
      try {
        if (final && !complete) throw new CorruptStateError('incomplete');
        const entry = deserializeState(line, this.clock());
        dropped.push(...entry.dropped.map((d) => `journal entry ${n}: ${d}`));
        if (entry.state.seq > state.seq) state = applyJournalEntry(state, entry.state);
        return true;
      } catch (err) {
        dropped.push(
          final && !complete
            ? `journal: the last entry was cut short (a crash while saving); the state is as of the entry before`
            : `journal entry ${n} is unreadable (${(err as Error).message}); it and later entries were not applied`,
        );
        return false;
      }
    };
    // One line behind, to know which line is the last.
    let held: string | null = null;
    let n = 0;
    let stopped = false;
    try {
      for await (const line of lines) {
        if (held !== null && !apply(held, n, false)) {
          stopped = true;
          break;
        }
        held = line;
        n++;
      }
      if (!stopped && held !== null) apply(held, n, true);
    } catch (err) {
      dropped.push(
        `journal ${this.journalPath} could not be read past entry ${n} ` +
          `(${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); the state is as of the entry before`,
      );
    } finally {
      lines.close();
      stream.destroy();
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

/** The last byte of a file `size` bytes long, as a character. */
async function lastByte(path: string, size: number): Promise<string> {
  const file = await open(path, 'r');
  try {
    const { buffer } = await file.read(Buffer.alloc(1), 0, 1, size - 1);
    return buffer.toString('latin1');
  } finally {
    await file.close();
  }
}

/**
 * Applies a journal entry (same shape as a state file, holding only the keys that changed) over
 * a state being loaded: pool headers are replaced, keys merged into the base's own key maps (a
 * map of a million keys is not copied for every entry).
 */
function applyJournalEntry(base: StateFile, entry: StateFile): StateFile {
  const pools = base.pools;
  for (const [name, p] of Object.entries(entry.pools)) {
    const prior = pools[name];
    pools[name] = prior ? { ...p, pins: { ...prior.pins, ...p.pins }, keys: Object.assign(prior.keys, p.keys) } : p;
  }
  return { version: base.version, savedAt: entry.savedAt, seq: entry.seq, pools };
}
