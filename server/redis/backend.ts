import { randomBytes } from 'node:crypto';
import type { Logger } from '../../shared/logger.js';
import type { PoolBackend, PoolOptions, ReplacePool } from '../pools/contract.js';
import type { PoolPolicy } from '../pools/policy.js';
import { ConfigError } from '../../shared/env.js';
import type { Health, StateBackend } from '../state/backend.js';
import { countReservedAsUsed } from '../state/reservations.js';
import type { LoadResult } from '../state/store.js';
import { RedisPool } from './pool.js';
import { LeasingPool } from './leases.js';
import type { RedisClient } from './client.js';

/**
 * How often the dashboard's history counts go to Redis: what a crash loses at most, and how far behind
 * other instances' charts are.
 */
const ACTIVITY_FLUSH_MS = 2000;

/** A Redis URL without its password, for logs. */
export function redactUrl(url: string): string {
  return url.replace(
    /\/\/([^@/]*)@/u,
    (_m, auth: string) => `//${auth.includes(':') ? `${auth.split(':')[0]}:***` : '***'}@`,
  );
}

/**
 * The Redis backend: every pool's state in Redis, shared by any number of instances, each change
 * one atomic script run. Nothing to save; while Redis is down, pools answer 503 state_unavailable
 * and /healthz says so, and once it is back the key files are applied again (membership may have
 * been lost with a Redis without persistence, or missed while it was down).
 */
export class RedisBackend implements StateBackend {
  readonly description: string;
  private readonly client: RedisClient;
  private closing = false;

  private readonly pools = new Map<string, RedisPool>();
  private readonly leasing = new Map<string, LeasingPool>();
  private flushTimer: NodeJS.Timeout | null = null;
  /** Names this instance in the leases it holds (claim). */
  private readonly instanceId = randomBytes(8).toString('hex');

  constructor(
    client: RedisClient,
    private readonly prefix: string,
    private readonly options: {
      logger: Logger;
      url: string;
      clock: () => number;
      /** Start even on a Redis that keeps nothing across its own restart. */
      allowVolatile: boolean;
      /** Hand out from leased blocks (leases.ts); false or absent: every handout is a script run. */
      leases?: boolean;
      /**
       * The file backend's state, imported for each pool Redis holds nothing of (moving from file
       * to Redis), then marked as moved so nobody edits it believing it is in use.
       */
      importFrom?: {
        description: string;
        load(): Promise<LoadResult>;
        markMoved(where: string, at: number): Promise<void>;
      };
    },
  ) {
    this.client = client;
    this.description = `Redis (${redactUrl(options.url)}, prefix ${prefix})`;
  }

  /** A lease in Redis (SET NX PX): the first instance to ask runs the job; the lease lapses with its ttl. */
  async claim(job: string, ttlMs: number): Promise<boolean> {
    try {
      return (
        (await this.client.set(
          `${this.prefix}lease:${job}`,
          this.instanceId,
          'PX',
          Math.max(1, Math.round(ttlMs)),
          'NX',
        )) === 'OK'
      );
    } catch {
      return false; // Redis down: nobody can record a result anyway
    }
  }

  /** The state is in Redis already: the new pool reads it, and takes the key file's lines. */
  readonly replacePool: ReplacePool = async (_old, name, policy, options, lines, install) => {
    const pool = this.createPool(name, policy, options);
    await pool.setKeys(lines, this.options.clock());
    install(pool);
  };

  createPool(name: string, policy: PoolPolicy, options: PoolOptions): PoolBackend {
    const pool = new RedisPool(name, policy, this.client, this.prefix, options);
    this.pools.set(name, pool);
    if (!this.options.leases) return pool;
    const leasing = new LeasingPool(pool, this.options.clock, options.rng);
    // A pool made anew (pools.json changed) takes the old one's place: the old one's leases go back.
    void this.leasing.get(name)?.close();
    this.leasing.set(name, leasing);
    return leasing;
  }

  /**
   * Gives a starting connection a moment (so a healthy start does not log a failed first sync),
   * refuses a Redis that would forget every count when it restarts, and brings over the state
   * file for pools Redis holds nothing of yet.
   */
  async open(): Promise<void> {
    const client = this.client;
    if (client.status !== 'ready') {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          client.off('ready', done);
          resolve();
        };
        const timer = setTimeout(done, 3000);
        client.once('ready', done);
      });
    }
    if (client.status !== 'ready') return; // down at start: served as 503s until it answers
    await this.checkPersistence();
    await this.importStateFile();
  }

  /** A Redis with neither an append-only file nor snapshots loses every count when it restarts. */
  private async checkPersistence(): Promise<void> {
    let appendonly: string | undefined;
    let save: string | undefined;
    try {
      appendonly = ((await this.client.config('GET', 'appendonly')) as string[])[1];
      save = ((await this.client.config('GET', 'save')) as string[])[1];
    } catch (err) {
      // Managed Redis services often refuse CONFIG; they persist by their own means.
      this.options.logger.warn(
        `state: cannot ask Redis whether it persists (${(err as Error).message}); make sure it keeps an ` +
          `append-only file`,
      );
      return;
    }
    if (appendonly === 'yes' || (save !== undefined && save.trim() !== '')) return;
    if (this.options.allowVolatile) {
      this.options.logger.warn(
        'state: Redis keeps no append-only file and no snapshots: ' +
          'a Redis restart forgets every count (REDIS_ALLOW_VOLATILE=true)',
      );
      return;
    }
    throw new ConfigError(
      `REDIS_URL: ${redactUrl(this.options.url)} keeps no append-only file and no snapshots (appendonly no, ` +
        `save ""), so a Redis restart would forget every count and keys would be handed out past their limits; ` +
        `turn on appendonly (appendonly yes, appendfsync everysec) or set REDIS_ALLOW_VOLATILE=true`,
    );
  }

  private async importStateFile(): Promise<void> {
    const from = this.options.importFrom;
    if (!from) return;
    const loaded = await from.load().catch((err: Error) => {
      this.options.logger.warn(
        `state: ${from.description} cannot be read to import (${err.message}); starting from what Redis holds`,
      );
      return null;
    });
    if (loaded?.kind !== 'loaded') return;
    const now = this.options.clock();
    for (const [name, st] of Object.entries(loaded.state.pools)) {
      const pool = this.pools.get(name);
      if (!pool) continue;
      const { uses } = countReservedAsUsed(st, pool.clock, now);
      if (await pool.importState(st, now)) {
        this.options.logger.info(
          `state: pool ${name}: Redis held nothing; imported ${Object.keys(st.keys).length} keys' state from ` +
            `${from.description}${uses ? ` (${uses} reserved uses counted as used)` : ''}`,
          { pool: name },
        );
      }
    }
    // State lives in Redis now: the file is left as it was, marked, so the CLI will not edit it.
    await from
      .markMoved(this.description, now)
      .catch((err: Error) =>
        this.options.logger.warn(`state: could not mark ${from.description} as moved to Redis (${err.message})`),
      );
  }

  async resume(hooks: { reapplyKeyFiles: () => Promise<void> }): Promise<void> {
    this.flushTimer = setInterval(() => void this.flushActivity(), ACTIVITY_FLUSH_MS);
    this.flushTimer.unref();
    const { client } = this;
    const { logger } = this.options;
    let down = client.status !== 'ready';
    const lost = (why: string) => {
      if (this.closing) return;
      if (!down)
        logger.error(`state: Redis connection lost (${why}); answering 503 state_unavailable until it is back`);
      down = true;
    };
    client.on('error', (err: Error) => lost(err.message));
    client.on('close', () => lost('connection closed'));
    client.on('ready', () => {
      if (down) logger.info('state: Redis is back; resyncing key files');
      down = false;
      void hooks.reapplyKeyFiles();
    });
    logger.info(`state: ${this.description}`);
  }

  health(): Health {
    return this.client.status === 'ready'
      ? { ok: true }
      : { ok: false, reason: `state backend (Redis) is ${this.client.status}` };
  }

  /** Adds every pool's counts for the dashboard's history to Redis (every ACTIVITY_FLUSH_MS, and at close). */
  private async flushActivity(): Promise<void> {
    const now = this.options.clock();
    // kept for the next flush
    for (const pool of this.pools.values()) await pool.flushActivity(now).catch(() => undefined);
  }

  async close(): Promise<string> {
    if (this.flushTimer) clearInterval(this.flushTimer);
    // Unused leased uses go back, so they are not counted as used.
    for (const pool of this.leasing.values()) await pool.close().catch(() => undefined);
    await this.flushActivity();
    this.closing = true;
    this.client.disconnect();
    return 'state lives in Redis';
  }
}
