import type { Logger } from '../shared/logger.js';
import type { PoolEvent } from './pools/contract.js';

/** What a pool's event says in the log: the sink start.ts gives the registry. */
export function logPoolEvent(log: Logger, e: PoolEvent): void {
  switch (e.type) {
    case 'rotate':
      // Turn-taking reaches here only with debug on (the registry drops it otherwise: the hot path);
      // a rotation away from a key that went out is news.
      log.log(e.why === 'unavailable' ? 'info' : 'debug', `pool ${e.pool}: rotated ${e.from ?? '-'} -> ${e.to}`, {
        pool: e.pool,
        from: e.from,
        to: e.to,
        why: e.why,
      });
      break;
    case 'key_out':
      log.log(e.status === 'exhausted' ? 'info' : 'warn', `pool ${e.pool}: key ${e.keyId} ${e.status} (${e.reason})`, {
        pool: e.pool,
        keyId: e.keyId,
        status: e.status,
        reason: e.reason,
        until: e.until === null ? null : new Date(e.until).toISOString(),
      });
      break;
    case 'pins_evicted':
      log.debug(`pool ${e.pool}: ${e.count} oldest pins evicted (PIN_MAX)`, { pool: e.pool, count: e.count });
      break;
    case 'pool_throttled':
      log.warn(
        `pool ${e.pool}: ${e.keys} keys reported 429 together; throttling the pool until ` +
          `${new Date(e.until).toISOString()} and leaving the keys unmarked`,
        {
          pool: e.pool,
          until: new Date(e.until).toISOString(),
        },
      );
      break;
  }
}
