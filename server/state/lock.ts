import { randomBytes } from 'node:crypto';
import { open, readFile, unlink } from 'node:fs/promises';

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
  ) {
    super(
      `STATE_FILE ${statePath} is in use by another Keywarden server (pid ${holderPid}); stop it, or give this ` +
        `one its own STATE_FILE`,
    );
    this.name = 'StateLockedError';
  }
}

interface LockBody {
  pid: number;
  token: string;
}

/**
 * One writer per state file: `<STATE_FILE>.lock` holds the pid (and a token, so two servers in
 * one process are told apart) of the server that owns the file. A lock whose process is gone (a
 * kill -9, a crash) is taken over. Created exclusively (O_EXCL), so of two servers starting at
 * once one wins.
 */
export class StateLock {
  readonly path: string;
  private readonly token = randomBytes(8).toString('hex');
  private held = false;

  constructor(
    readonly statePath: string,
    private readonly probe: ProcessProbe,
  ) {
    this.path = `${statePath}.lock`;
  }

  /**
   * Takes the lock; says whose stale lock it took over (or null). Throws StateLockedError while a live
   * server holds it.
   */
  async acquire(): Promise<{ tookOverFrom: number | null }> {
    if (await this.create()) return { tookOverFrom: null };
    const holder = await this.read();
    if (holder && (holder.token === this.token || this.probe.isAlive(holder.pid))) {
      if (holder.token === this.token) return { tookOverFrom: null };
      throw new StateLockedError(this.statePath, holder.pid);
    }
    // Left by a process that is gone (or unreadable): take it over, once; a racing starter that wins keeps it.
    await unlink(this.path).catch(() => {});
    if (await this.create()) return { tookOverFrom: holder?.pid ?? null };
    const winner = await this.read();
    throw new StateLockedError(this.statePath, winner?.pid ?? 0);
  }

  /** Lets the lock go (only if it is still ours). */
  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    const holder = await this.read();
    if (holder?.token === this.token) await unlink(this.path).catch(() => {});
  }

  private async create(): Promise<boolean> {
    try {
      const fh = await open(this.path, 'wx', 0o600);
      try {
        await fh.writeFile(JSON.stringify({ pid: this.probe.pid, token: this.token } satisfies LockBody));
        await fh.sync();
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
        ? { pid: body.pid, token: body.token }
        : null;
    } catch {
      return null;
    }
  }
}
