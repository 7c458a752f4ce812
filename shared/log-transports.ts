import { createWriteStream, fstatSync, type WriteStream } from 'node:fs';
import { Socket } from 'node:net';
import TransportStream from 'winston-transport';
import type winston from 'winston';

/**
 * Where log lines go, without the request path waiting on them: the log file and stdout, each a
 * stream written off the event loop (libuv's thread pool), with a bound on what may wait. A line
 * that cannot be written, or that would pass the bound in a burst, is dropped and counted
 * (`logWriteFailures`), never queued without end and never a reason to stall.
 */

let writeFailures = 0;

/** Log lines dropped because they could not be written (a full disk, a burst past the bound), since start. */
export function logWriteFailures(): number {
  return writeFailures;
}

export function countWriteFailure(): void {
  writeFailures++;
}

const MESSAGE = Symbol.for('message');
/** After a failed write, how long lines are dropped before the file is opened again. */
const REOPEN_AFTER_MS = 1000;
/** Bytes waiting for a slow disk or reader, at most: beyond it a line is dropped (and counted), not queued. */
const MAX_PENDING_BYTES = 8 * 1024 * 1024;

/** How long lines gather before they are written together. */
const FLUSH_EVERY_MS = 10;

/**
 * Lines gathered for FLUSH_EVERY_MS and handed to `stream` as one write: a burst of requests
 * costs a write call every 10 ms, not one a line or a turn of the event loop (each write's
 * completion wakes the loop once more; a busy proxy paid for that in throughput).
 */
class Batch {
  private lines: string[] = [];
  private scheduled = false;

  constructor(private readonly write: (text: string, lines: number) => void) {}

  add(line: string): void {
    this.lines.push(line);
    if (!this.scheduled) {
      this.scheduled = true;
      setTimeout(() => this.flush(), FLUSH_EVERY_MS);
    }
  }

  flush(): void {
    this.scheduled = false;
    if (this.lines.length === 0) return;
    const text = `${this.lines.join('\n')}\n`;
    const lines = this.lines.length;
    this.lines = [];
    this.write(text, lines);
  }
}

/**
 * A writable stream on an inherited descriptor (stdout: 1) that never holds the event loop.
 * `process.stdout` on a pipe or socket (as under pm2) writes synchronously, so each write waits
 * for the reader; a socket of our own on the descriptor writes asynchronously, queueing in
 * libuv. A file takes fs writes (the thread pool); a terminal keeps process.stdout.
 */
function asyncStreamOn(fd: number): NodeJS.WritableStream & { writableLength: number } {
  let kind: 'pipe' | 'file' | 'other' = 'other';
  try {
    const st = fstatSync(fd);
    kind = st.isFIFO() || st.isSocket() ? 'pipe' : st.isFile() ? 'file' : 'other';
  } catch {
    // not open: process.stdout says so in its own way
  }
  if (kind === 'pipe') return new Socket({ fd, readable: false, writable: true });
  if (kind === 'file') return createWriteStream('', { fd, autoClose: false });
  return process.stdout;
}

/**
 * Lines for an inherited descriptor (stdout: 1), written asynchronously (see asyncStreamOn), a
 * turn's lines at a time; past MAX_PENDING_BYTES waiting for a slow reader, dropped and counted.
 */
export class BufferedLines extends TransportStream {
  private readonly stream: NodeJS.WritableStream & { writableLength: number };
  private readonly batch = new Batch((text, lines) => {
    if (this.stream.writableLength > MAX_PENDING_BYTES) writeFailures += lines;
    else this.stream.write(text, (err) => void (err && (writeFailures += lines)));
  });

  constructor(fd: number, format: winston.Logform.Format) {
    super({ format });
    this.stream = asyncStreamOn(fd);
    this.stream.on('error', () => void writeFailures++);
  }

  override log(info: Record<string | symbol, unknown>, callback: () => void): void {
    this.batch.add(String(info[MESSAGE]));
    callback();
  }

  /** At the logger's end: the lines of this turn too, and everything queued, written. */
  override _final(callback: (error?: Error | null) => void): void {
    this.batch.flush();
    if (this.stream === process.stdout) return callback();
    // Everything queued written, without closing the descriptor others may share.
    if (this.stream.writableLength === 0) return callback();
    this.stream.once('drain', () => callback());
  }
}

/**
 * The log file: each line appended, and a line that cannot be written (ENOSPC, EIO) dropped and
 * counted. winston's own File transport only notes such an error for its debug output and then
 * queues every later line in memory; this one drops lines for a second and opens the file
 * again, so a full disk costs neither memory nor the process.
 */
export class LogFile extends TransportStream {
  private stream: WriteStream | null = null;
  private reopenAt = 0;
  private readonly batch = new Batch((text, lines) => {
    const stream = this.open();
    if (stream === null || stream.writableLength > MAX_PENDING_BYTES) writeFailures += lines;
    else stream.write(text, (err) => void (err && (writeFailures += lines)));
  });

  constructor(
    private readonly filename: string,
    format: winston.Logform.Format,
  ) {
    super({ format });
  }

  override log(info: Record<string | symbol, unknown>, callback: () => void): void {
    this.batch.add(String(info[MESSAGE]));
    callback();
  }

  private open(): WriteStream | null {
    if (this.stream) return this.stream;
    if (performance.now() < this.reopenAt) return null;
    const stream = createWriteStream(this.filename, { flags: 'a' });
    stream.on('error', () => {
      // The writes still queued get their callbacks with the error (counted there).
      stream.destroy();
      if (this.stream === stream) this.stream = null;
      this.reopenAt = performance.now() + REOPEN_AFTER_MS;
    });
    return (this.stream = stream);
  }

  /** At the logger's end: what is queued is written before the stream closes. */
  override _final(callback: (error?: Error | null) => void): void {
    this.batch.flush();
    if (!this.stream) return callback();
    this.stream.end(() => callback());
  }
}
