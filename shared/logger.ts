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

/** The time of a line logged now, as ISO text, made once a millisecond. */
function timestampNow(): string {
  const now = Date.now();
  if (now !== stampedAt) {
    stampedAt = now;
    stampText = new Date(now).toISOString();
  }
  return stampText;
}

/**
 * The line's time, once a line for every transport (each transport's own `timestamp()` made a
 * Date and its ISO text per line and transport), and made once a millisecond: a busy proxy
 * writes several access lines in one.
 */
const stamp = winston.format((info) => {
  info.timestamp = timestampNow();
  return info;
});

const MESSAGE = Symbol.for('message');
const safeJson = winston.format.json();

/**
 * A log file line: the time, level and message first, as a reader of the file looks for them,
 * then the fields. By the engine's JSON.stringify, which throws on what it refuses (a cycle, a
 * BigInt).
 */
function fileLine(timestamp: unknown, level: string, message: unknown, fields: object): string {
  // What JSON leaves out (an undefined message) is left out as JSON.stringify leaves it out.
  if (timestamp === undefined || message === undefined) return JSON.stringify({ timestamp, level, message, ...fields });
  const rest = JSON.stringify(fields);
  const time = JSON.stringify(timestamp);
  const head = `{"timestamp":${time},"level":${JSON.stringify(level)},"message":${JSON.stringify(message)}`;
  return rest === '{}' ? `${head}}` : `${head},${rest.slice(1)}`;
}

/**
 * The log file's format: fileLine; winston's json() (safe-stable-stringify, its options
 * configured anew on every line, keys sorted) only for what JSON.stringify refuses. Half the cost
 * of a line (8.3 µs to 4.7 µs with the shared timestamp).
 */
const jsonLine = winston.format((info) => {
  try {
    const { timestamp, level, message, ...meta } = info;
    info[MESSAGE] = fileLine(timestamp, level, message, meta);
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

type AccessLine = (message: string, meta: Record<string, unknown>) => void;
const accessWriters = new WeakMap<Logger, AccessLine>();
const noop = () => {};

/**
 * How access lines (one a proxied request) are logged: at info, to the logger's log file alone
 * (the console, which pm2 keeps in a file of its own, would only repeat them), each line the
 * file's usual one (fileLine), made here and handed straight to the file's transport. The
 * logger's own way (two object streams, a copy of the line for every transport) cost a busy
 * proxy about a tenth of its throughput. Without a log file (tests' loggers, a console-only
 * logger): the logger's own way, to every transport.
 */
export function accessLogger(logger: Logger): AccessLine {
  let write = accessWriters.get(logger);
  if (write) return write;
  const file = logger.transports.find((t): t is LogFile => t instanceof LogFile);
  write = file
    ? (message, meta) => {
        if (logger.silent || logger.levels[logger.level]! < logger.levels.info!) return;
        let line: string;
        try {
          line = fileLine(timestampNow(), 'info', message, meta);
        } catch {
          return logger.info(message, meta); // a cycle, a BigInt: winston's safe JSON
        }
        file.log({ [MESSAGE]: line }, noop);
      }
    : (message, meta) => logger.info(message, meta);
  accessWriters.set(logger, write);
  return write;
}
