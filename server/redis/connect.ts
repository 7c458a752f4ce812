import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../../shared/logger.js';
import { FileStore } from '../state/file.js';
import { RedisBackend } from './backend.js';

/**
 * The Redis backend as the server runs it: the connection's settings and the state file it may
 * import from. index.ts loads this module only with STATE_BACKEND=redis, so the file backend's
 * start (and every restart under pm2) skips loading ioredis.
 */
export function connectRedisBackend(options: {
  url: string;
  /** A Redis Cluster's seed nodes (REDIS_CLUSTER_NODES); empty: the one Redis at `url`. */
  clusterNodes?: ReadonlyArray<{ host: string; port: number }>;
  prefix: string;
  allowVolatile: boolean;
  /** Hand out from leased blocks (redis/leases.ts); false: every handout asks Redis. */
  leases?: boolean;
  /** The state file to import on a first start against an empty Redis (read only, never moved aside). */
  stateFile: string;
  logger: Logger;
}): RedisBackend {
  const file = new FileStore(options.stateFile);
  // Fail fast while Redis is down (503 state_unavailable, never a hanging request) and reconnect by itself.
  const connection: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    // Only for a Redis that hangs while connected; a lost connection fails at once (no offline queue).
    // Generous, because a reply lost to a timeout is a handout counted but never delivered.
    commandTimeout: 5000,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(100 * times, 2000),
  };
  const nodes = options.clusterNodes ?? [];
  // A cluster: each pool's keys share a hash tag ({pool}), so a pool lives in one slot and its
  // script runs on one node; the pools spread over the nodes.
  const client =
    nodes.length > 0
      ? new Cluster([...nodes], {
          enableOfflineQueue: false,
          redisOptions: connection,
          clusterRetryStrategy: (times) => Math.min(100 * times, 2000),
        })
      : new Redis(options.url, connection);
  return new RedisBackend(client, options.prefix, {
    logger: options.logger,
    url: nodes.length > 0 ? `cluster ${nodes.map((n) => `${n.host}:${n.port}`).join(',')}` : options.url,
    clock: Date.now,
    allowVolatile: options.allowVolatile,
    leases: options.leases ?? true,
    importFrom: {
      description: file.description,
      load: () => file.loadReadOnly(),
      markMoved: (where: string, at: number) => file.markMoved(where, at),
    },
  });
}
