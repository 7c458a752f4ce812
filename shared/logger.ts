import { mkdirSync } from 'node:fs';
import { once } from 'node:events';
import { dirname } from 'node:path';
import winston from 'winston';
import { BufferedLines, countWriteFailure, LogFile } from './log-transports.js';
import { ConfigError } from './env.js';

export type Logger = winston.Logger;

export interface LoggerOptions {
  level: string;
  /** JSON lines go here; null for console only. */
  file: string | null;
  /** Readable lines on the console (stdout). */
  console?: boolean;
  /** Extra transports (tests capture lines with a stream transport). */
  transports?: winston.transport[];
}

const consoleFormat = winston.format.printf(({ level, message, timestamp, ...meta }) => {
  const rest = Object.keys(meta).length ? ` ${JSON.stringify(meta)}` : '';
  return `${timestamp as string} ${level.toUpperCase().padEnd(5)} ${String(message)}${rest}`;
});

let stampedAt = NaN;
let stampText = '';

/**
 * The line's time, once a line for every transport (each transport's own `timestamp()` made a
 * Date and its ISO text per line and transport), and made once a millisecond: a busy proxy
 * writes several access lines in one.
 */
const stamp = winston.format((info) => {
  const now = Date.now();
  if (now !== stampedAt) {
    stampedAt = now;
    stampText = new Date(now).toISOString();
  }
  info.timestamp = stampText;
  return info;
});

const MESSAGE = Symbol.for('message');
const safeJson = winston.format.json();

/**
 * A JSON line by the engine's JSON.stringify; winston's json() (safe-stable-stringify, its options
 * configured anew on every line, keys sorted) only for what JSON.stringify refuses: a cycle, a
 * BigInt. Half the cost of a line (8.3 µs to 4.7 µs with the shared timestamp).
 */
const jsonLine = winston.format((info) => {
  try {
    // The time, level and message first, as a reader of the file looks for them.
    const { timestamp, level, message, ...meta } = info;
    info[MESSAGE] = JSON.stringify({ timestamp, level, message, ...meta });
    return info;
  } catch {
    return safeJson.transform(info, {});
  }
});

/**
 * winston logger: JSON lines to the log file, readable lines on the console. Callers log keyIds
 * and masked keys only; plaintext keys never reach a logger.
 */
export function createLogger(options: LoggerOptions): Logger {
  const transports: winston.transport[] = [...(options.transports ?? [])];
  if (options.file) {
    transports.push(new LogFile(options.file, jsonLine()));
  }
  if (options.console ?? true) {
    transports.push(new BufferedLines(1, consoleFormat));
  }
  // With nowhere to write (the CLI offline), silent: winston would warn on every line instead.
  const logger = winston.createLogger({
    level: options.level,
    format: stamp(),
    transports,
    silent: transports.length === 0,
  });
  // A transport's error reaches the logger, where nobody listening would make it the process's end.
  logger.on('error', countWriteFailure);
  return logger;
}

/**
 * Resolves once every transport has written what it was given (before exit): the lines still
 * buffered for stdout and the log file are not lost on a clean stop. At most 2 s (a stuck disk).
 */
export async function closeLogger(logger: Logger): Promise<void> {
  const finished = Promise.all(logger.transports.map((t) => once(t, 'finish').catch(() => {})));
  logger.end();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([finished, new Promise((resolve) => (timer = setTimeout(resolve, 2000)))]);
  clearTimeout(timer);
}

export { logWriteFailures } from './log-transports.js';

/** Creates the folder of a log file at startup; failing, a ConfigError naming the variable that set it. */
export function ensureLogFolder(variable: string, file: string): void {
  try {
    mkdirSync(dirname(file), { recursive: true });
  } catch (err) {
    throw new ConfigError(
      `${variable}: cannot create the folder for ${file} ` +
        `(${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
}
