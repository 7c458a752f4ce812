import type { Redis } from 'ioredis';
import type { Logger } from '../../shared/logger.js';
import type { PoolBackend, PoolOptions } from '../pools/contract.js';
import type { PoolPolicy } from '../pools/policy.js';
import type { Health, StateBackend } from '../state/backend.js';
import { RedisPool, withPoolScript } from './pool.js';

/** A Redis URL without its password, for logs. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/u, (_m, auth: string) => `//${auth.includes(':') ? `${auth.split(':')[0]}:***` : '***'}@`);
}

/**
 * The Redis backend: every pool's state in Redis, shared by any number of instances, each change
 * one atomic script run. Nothing to save; while Redis is down, pools answer 503 state_unavailable
 * and /healthz says so, and once it is back the key files are applied again (membership may have
 * been lost with a Redis without persistence, or missed while it was down).
 */
export class RedisBackend implements StateBackend {
  readonly description: string;
  private readonly client: ReturnType<typeof withPoolScript>;
  private closing = false;

  constructor(
    client: Redis,
    private readonly prefix: string,
    private readonly options: { logger: Logger; url: string },
  ) {
    this.client = withPoolScript(client);
    this.description = `Redis (${redactUrl(options.url)}, prefix ${prefix})`;
  }

  createPool(name: string, policy: PoolPolicy, options: PoolOptions): PoolBackend {
    return new RedisPool(name, policy, this.client, this.prefix, options);
  }

  /** Gives a starting connection a moment, so a healthy start does not log a failed first sync. */
  async open(): Promise<void> {
    const client = this.client;
    if (client.status === 'ready') return;
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

  async resume(hooks: { reapplyKeyFiles: () => Promise<void> }): Promise<void> {
    const { client } = this;
    const { logger } = this.options;
    let down = client.status !== 'ready';
    const lost = (why: string) => {
      if (this.closing) return;
      if (!down) logger.error(`state: Redis connection lost (${why}); answering 503 state_unavailable until it is back`);
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
    return this.client.status === 'ready' ? { ok: true } : { ok: false, reason: `state backend (Redis) is ${this.client.status}` };
  }

  async close(): Promise<string> {
    this.closing = true;
    this.client.disconnect();
    return 'state lives in Redis';
  }
}
