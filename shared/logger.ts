import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import winston from 'winston';
import TransportStream from 'winston-transport';
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

let writeFailures = 0;

/** Log lines a transport could not write (a full disk under LOG_FILE), since the process started. */
export function logWriteFailures(): number {
  return writeFailures;
}

const MESSAGE = Symbol.for('message');
/** After a failed write, how long lines are dropped before the file is opened again. */
const REOPEN_AFTER_MS = 1000;
/** Lines waiting for a slow disk, at most: beyond it a line is dropped (and counted), not queued. */
const MAX_PENDING_BYTES = 8 * 1024 * 1024;

/**
 * The log file: each line appended, and a line that cannot be written (ENOSPC, EIO) dropped and
 * counted (`logWriteFailures`). winston's own File transport only notes such an error for its
 * debug output and then queues every later line in memory; this one drops lines for a second
 * and opens the file again, so a full disk costs neither memory nor the process.
 */
class LogFile extends TransportStream {
  private stream: WriteStream | null = null;
  private reopenAt = 0;

  constructor(
    private readonly filename: string,
    format: winston.Logform.Format,
  ) {
    super({ format });
  }

  override log(info: Record<string | symbol, unknown>, callback: () => void): void {
    const stream = this.open();
    if (stream === null || stream.writableLength > MAX_PENDING_BYTES) writeFailures++;
    else
      stream.write(`${String(info[MESSAGE])}\n`, (err) => {
        if (err) writeFailures++;
      });
    callback();
  }

  private open(): WriteStream | null {
    if (this.stream) return this.stream;
    if (performance.now() < this.reopenAt) return null;
    const stream = createWriteStream(this.filename, { flags: 'a' });
    stream.on('error', () => {
      // The lines still queued get their callbacks with the error (counted there).
      stream.destroy();
      if (this.stream === stream) this.stream = null;
      this.reopenAt = performance.now() + REOPEN_AFTER_MS;
    });
    return (this.stream = stream);
  }

  /** At the logger's end: what is queued is written before the stream closes. */
  override _final(callback: (error?: Error | null) => void): void {
    if (!this.stream) return callback();
    this.stream.end(() => callback());
  }
}

/**
 * winston logger: JSON lines to the log file, readable lines on the console. Callers log keyIds
 * and masked keys only; plaintext keys never reach a logger.
 */
export function createLogger(options: LoggerOptions): Logger {
  const transports: winston.transport[] = [...(options.transports ?? [])];
  if (options.file) {
    transports.push(
      new LogFile(options.file, winston.format.combine(winston.format.timestamp(), winston.format.json())),
    );
  }
  if (options.console ?? true) {
    transports.push(
      new winston.transports.Console({ format: winston.format.combine(winston.format.timestamp(), consoleFormat) }),
    );
  }
  // With nowhere to write (the CLI offline), silent: winston would warn on every line instead.
  const logger = winston.createLogger({ level: options.level, transports, silent: transports.length === 0 });
  // A transport's error reaches the logger, where nobody listening would make it the process's end.
  logger.on('error', () => {
    writeFailures++;
  });
  return logger;
}

/** Resolves once every file transport has written what it was given (before exit). */
export function closeLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 2000);
    logger.on('finish', () => {
      clearTimeout(timer);
      setImmediate(resolve);
    });
    logger.end();
  });
}

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
