import { Writable } from 'node:stream';
import winston from 'winston';
import { createLogger, type Logger } from '../../shared/logger.js';

/** A real winston logger whose JSON lines land in `lines` (no console noise). */
export function memoryLogger(level = 'debug'): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString('utf8'));
      cb();
    },
  });
  const transport = new winston.transports.Stream({ stream, format: winston.format.json() });
  return { logger: createLogger({ level, file: null, console: false, transports: [transport] }), lines };
}
