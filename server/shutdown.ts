import type { Server } from 'node:http';
import type { Logger } from '../shared/logger.js';
import type { KeyFiles } from './keys/key-files.js';
import type { StateBackend } from './state/backend.js';

/**
 * Graceful stop: stop accepting connections, stop watching key files and syncing with the
 * upstreams, let in-flight requests
 * finish, then close the state backend (the file backend's final save), and let the composition
 * root exit. Idempotent: a second signal waits for the first stop.
 */
export function createShutdown(deps: {
  server: Server;
  keyFiles: KeyFiles;
  backend: StateBackend;
  logger: Logger;
  upstream?: { stop(): Promise<void> };
}): (reason: string) => Promise<void> {
  let stopping: Promise<void> | null = null;
  return (reason: string) => {
    stopping ??= (async () => {
      deps.logger.info(`shutting down (${reason}); closing state (${deps.backend.description})`);
      const closed = new Promise<void>((resolve) => deps.server.close(() => resolve()));
      deps.server.closeIdleConnections();
      await deps.keyFiles.stopWatching();
      await deps.upstream?.stop(); // no check is recorded after the final save
      // In-flight requests finish their synchronous handout before close; give them a moment, then cut.
      const timeout = setTimeout(() => deps.server.closeAllConnections(), 1000);
      await closed;
      clearTimeout(timeout);
      deps.logger.info(`${await deps.backend.close()}; bye`);
    })();
    return stopping;
  };
}
