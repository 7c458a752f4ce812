import type { PoolBackend, PoolOptions, ReplacePool } from '../pools/contract.js';
import type { PoolPolicy } from '../pools/policy.js';

export type Health = { ok: true } | { ok: false; reason: string };

/**
 * Where rotation state lives, chosen once in the composition root (lowdb's Adapter idea): the
 * state file for one instance (`state/file-backend.ts`) or Redis for many (`redis/backend.ts`).
 * Nothing below start.ts asks which one it got.
 */
export interface StateBackend {
  /** For logs: the file path, or Redis URL without password and the prefix. */
  readonly description: string;
  /** Makes the pool `name`, whose state this backend keeps. */
  createPool(name: string, policy: PoolPolicy, options: PoolOptions): PoolBackend;
  /** Before the key files are applied: connect (a starting Redis gets a moment). */
  open(): Promise<void>;
  /**
   * After the key files are applied: resume saved state and start keeping it. `reapplyKeyFiles`
   * applies every key file again (Redis, once it is back from an outage). `serving`: keys are
   * handed out from now (the server, not the CLI), so pools that keep reservations save every
   * key's first block before resume returns.
   */
  resume(hooks: {
    reapplyKeyFiles: () => Promise<void>;
    onSave?: (seconds: number, ok: boolean) => void;
    serving?: boolean;
  }): Promise<void>;
  /**
   * Makes the pools' pending reservations durable (see KeyState.reserved); only a backend whose
   * pools keep reservations has it. Rejects with StateUnavailableError when the state cannot be
   * saved, and paces its tries: callers ask again at once, and a try soon after a failure waits.
   */
  reserve?(): Promise<void>;
  /** After a start that failed past `open`: lets go of what open took (the state file's lock). */
  release?(): Promise<void>;
  /**
   * Takes the turn for a periodic job (`job`, e.g. the upstream sync of a pool) for `ttlMs`: true
   * when this instance is to run it now. Instances sharing state take turns (Redis: a lease that
   * lapses if its holder dies); a backend with one instance always answers true.
   */
  claim(job: string, ttlMs: number): Promise<boolean>;
  /** A pool made anew under a changed policy (pools.json edited live): see ReplacePool. */
  replacePool: ReplacePool;
  /** Whether the server can serve; /healthz reports it. */
  health(): Health;
  /** At shutdown, after the last request: the final save, or the connection closed. Says what it did, for the log. */
  close(): Promise<string>;
}
