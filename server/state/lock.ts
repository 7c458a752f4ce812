import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What a lock needs to know of processes: this one's pid, and whether another is alive. */
export interface ProcessProbe {
  pid: number;
  isAlive(pid: number): boolean;
}

/**
 * The probe for real processes, given this process's pid and `process.kill` by a composition
 * root: signal 0 tests that a pid is alive (EPERM: alive, but not ours to signal).
 */
export function processProbe(pid: number, kill: (pid: number, signal: 0) => unknown): ProcessProbe {
  return {
    pid,
    isAlive(other) {
      try {
        kill(other, 0);
        return true;
      } catch (err) {
        return (err as NodeJS.ErrnoException).code === 'EPERM';
      }
    },
  };
}

/** Another live server holds the state file: starting would have two writers overwrite each other. */
export class StateLockedError extends Error {
  constructor(
    readonly statePath: string,
    readonly holderPid: number,
    /** The path the holder reached the same file by, when it is another one (a hard link). */
    readonly holderPath: string | null = null,
  ) {
    super(
      `STATE_FILE ${statePath} is in use by another Keywarden server (pid ${holderPid}` +
        `${holderPath ? `, through ${holderPath}` : ''}); stop it, or give this one its own STATE_FILE`,
    );
    this.name = 'StateLockedError';
  }
}

interface LockBody {
  pid: number;
  token: string;
  /** The state file the holder locked (its real path): named when a second server is refused. */
  path?: string;
}

/**
 * One lock file, created exclusively (O_EXCL, so of two takers at once one wins), holding the
 * pid of its holder and a token (two holders in one process are told apart). A lock whose
 * process is gone (a kill -9, a crash) is taken over.
 */
class LockFile {
  private held = false;

  constructor(
    readonly path: string,
    private readonly body: LockBody,
    private readonly probe: ProcessProbe,
    /** Synced to disk when made (the lock by path); a lock that only has to outlive its holder need not be. */
    private readonly durable = true,
  ) {}

  /** Takes it: null, or the stale holder's pid it took over from; the live holder when another has it. */
  async acquire(): Promise<{ ok: true; tookOverFrom: number | null } | { ok: false; holder: LockBody }> {
    if (await this.create()) return { ok: true, tookOverFrom: null };
    const holder = await this.read();
    if (holder?.token === this.body.token) return { ok: true, tookOverFrom: null };
    if (holder && this.probe.isAlive(holder.pid)) return { ok: false, holder };
    // Left by a process that is gone (or unreadable): take it over, once; a racing starter that wins keeps it.
    await unlink(this.path).catch(() => {});
    if (await this.create()) return { ok: true, tookOverFrom: holder?.pid ?? null };
    return { ok: false, holder: (await this.read()) ?? { pid: 0, token: '' } };
  }

  /** Takes it from a holder that no longer holds what it locked (see StateLock.lockInode). */
  async takeOver(): Promise<boolean> {
    await unlink(this.path).catch(() => {});
    return this.create();
  }

  /** Lets it go (only if it is still ours). */
  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    const holder = await this.read();
    if (holder?.token === this.body.token) await unlink(this.path).catch(() => {});
  }

  private async create(): Promise<boolean> {
    try {
      const fh = await open(this.path, 'wx', 0o600);
      try {
        await fh.writeFile(JSON.stringify(this.body));
        if (this.durable) await fh.sync();
      } finally {
        await fh.close();
      }
      this.held = true;
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
  }

  private async read(): Promise<LockBody | null> {
    try {
      const body = JSON.parse(await readFile(this.path, 'utf8')) as Partial<LockBody>;
      return typeof body.pid === 'number' && typeof body.token === 'string'
        ? { pid: body.pid, token: body.token, ...(typeof body.path === 'string' ? { path: body.path } : {}) }
        : null;
    } catch {
      return null;
    }
  }
}

/** Where the locks by device and inode live: one folder per user, shared by every server of that user. */
export function defaultInodeLockDir(): string {
  return join(tmpdir(), `keywarden-locks-${process.getuid?.() ?? 'user'}`);
}

/**
 * One writer per state file. `<STATE_FILE>.lock` (STATE_FILE being the real path, through its
 * symlinks: fs/real-path.ts) holds the owner's pid. A hard link is another path to the same file,
 * so the file is also locked by its device and inode, in a folder every server of this user
 * shares (`defaultInodeLockDir`): a second server refused either way names the file and the
 * holder. (A save replaces the file, and with it the inode: a hard link made before it then
 * names a copy of its own, and the lock by inode is the one taken at start.)
 */
export class StateLock {
  readonly path: string;
  private readonly token = randomBytes(8).toString('hex');
  private readonly byPath: LockFile;
  private byInode: LockFile | null = null;
  private released = false;

  constructor(
    readonly statePath: string,
    private readonly probe: ProcessProbe,
    private readonly inodeLockDir: string = defaultInodeLockDir(),
  ) {
    this.path = `${statePath}.lock`;
    this.byPath = new LockFile(this.path, this.body(), probe);
  }

  /**
   * Takes the lock; says whose stale lock it took over (or null). Throws StateLockedError while a live
   * server holds the file, by this path or any other.
   */
  async acquire(): Promise<{ tookOverFrom: number | null }> {
    this.released = false;
    const taken = await this.byPath.acquire();
    if (!taken.ok) throw new StateLockedError(this.statePath, taken.holder.pid);
    const other = await this.lockInode();
    if (other) {
      await this.byPath.release();
      throw new StateLockedError(
        this.statePath,
        other.pid,
        other.path !== this.statePath ? (other.path ?? null) : null,
      );
    }
    return { tookOverFrom: taken.tookOverFrom };
  }

  /**
   * After a save: the file is a new one (a save writes a temp file and renames it over the old),
   * so the lock by inode moves to it, and a hard link made to it now is locked out too.
   */
  async follow(): Promise<void> {
    await this.lockInode();
  }

  /** Locks the file's current inode (moving the lock from an older one); the live holder if another has it. */
  private async lockInode(): Promise<LockBody | null> {
    if (this.released) return null;
    const st = await stat(this.statePath).catch(() => null);
    if (st === null) return null; // no file yet: no other path to it
    const path = join(this.inodeLockDir, `${st.dev}-${st.ino}.lock`);
    if (this.byInode?.path === path) return null;
    try {
      await mkdir(this.inodeLockDir, { recursive: true, mode: 0o700 });
      const next = new LockFile(path, this.body(), this.probe, false);
      const taken = await next.acquire();
      if (!taken.ok) {
        // Inodes are reused: the holder's lock counts only while its own path still names this file.
        const theirs = taken.holder.path ? await stat(taken.holder.path).catch(() => null) : null;
        const same = theirs !== null && theirs.dev === st.dev && theirs.ino === st.ino;
        if (same || !(await next.takeOver())) return taken.holder;
      }
      if (this.released) {
        await next.release();
        return null;
      }
      await this.byInode?.release();
      this.byInode = next;
    } catch {
      // No shared folder to lock in (a read-only /tmp): the lock by path stands alone.
    }
    return null;
  }

  /** Lets the lock go (only if it is still ours); a save finishing later takes nothing again. */
  async release(): Promise<void> {
    this.released = true;
    await this.byInode?.release();
    this.byInode = null;
    await this.byPath.release();
  }

  private body(): LockBody {
    return { pid: this.probe.pid, token: this.token, path: this.statePath };
  }
}
