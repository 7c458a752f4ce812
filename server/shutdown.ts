import type { Server } from 'node:http';
import type { Logger } from '../shared/logger.js';
import type { PoolRegistry } from './pools/registry.js';
import type { Saver } from './state/saver.js';

/**
 * Graceful stop: stop accepting connections, stop watching and saving on a timer, write the final
 * state, then let the composition root exit. Idempotent: a second signal waits for the first stop.
 */
export function createShutdown(deps: {
  server: Server;
  registry: PoolRegistry;
  /** The file backend's saver; null with Redis. */
  saver: Saver | null;
  logger: Logger;
  /** Closes the state backend's connection, if any. */
  closeState?: () => Promise<void>;
}): (reason: string) => Promise<void> {
  let stopping: Promise<void> | null = null;
  return (reason: string) => {
    stopping ??= (async () => {
      deps.logger.info(`shutting down (${reason})${deps.saver ? '; saving state' : ''}`);
      const closed = new Promise<void>((resolve) => deps.server.close(() => resolve()));
      deps.server.closeIdleConnections();
      deps.saver?.stop();
      await deps.registry.stopWatching();
      // In-flight requests finish their synchronous handout before close; give them a moment, then cut.
      const timeout = setTimeout(() => deps.server.closeAllConnections(), 1000);
      await closed;
      clearTimeout(timeout);
      if (deps.saver) {
        await deps.saver.saveNow(true);
        deps.logger.info('state saved; bye');
      } else {
        await deps.closeState?.();
        deps.logger.info('bye (state lives in Redis)');
      }
    })();
    return stopping;
  };
}
