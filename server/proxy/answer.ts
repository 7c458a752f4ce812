import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { Writable } from 'node:stream';

/** How much of an error answer the proxy reads to judge it; the rest is streamed or dropped, never kept. */
export const PEEK_BYTES = 64 * 1024;

/** Connection-level headers (RFC 9110 7.6.1): they describe one hop and are never passed on. */
export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
]);

/** The names a Connection header lists: hop-by-hop too. */
export function connectionListed(value: string | string[] | undefined): Set<string> {
  const text = Array.isArray(value) ? value.join(',') : (value ?? '');
  return new Set(
    text
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean),
  );
}

/** An upstream answer's headers for the caller, without hop-by-hop ones, as a flat list for writeHead. */
export function answerHeaders(headers: IncomingHttpHeaders): string[] {
  const listed = connectionListed(headers.connection);
  const out: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || listed.has(name)) continue;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, value);
  }
  return out;
}

/** A flat header list without content-length. */
export function withoutLength(flat: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < flat.length; i += 2) if (flat[i] !== 'content-length') out.push(flat[i]!, flat[i + 1]!);
  return out;
}

/** Writes `chunk` to `res`, calling back once it may take more (its 'drain'), or at once when the caller went away. */
function forward(res: ServerResponse, chunk: Buffer, callback: (err?: Error | null) => void): void {
  if (res.destroyed) return callback();
  if (res.write(chunk)) callback();
  else {
    const go = () => {
      res.off('drain', go);
      res.off('close', go);
      callback();
    };
    res.on('drain', go);
    res.on('close', go);
  }
}

/**
 * Where an upstream answer's body goes when the proxy must read some of it first (a refusal to
 * judge, or a create's answer for its access_token). Peeking: the first PEEK_BYTES are kept and
 * the stream is held there (backpressure reaches the upstream), `ready` resolves; then the proxy
 * either drops the answer (`destroy()`: undici aborts the request, nothing more is read) or
 * passes it on (`passOn`): the peeked part, then the rest as it arrives. Never more than
 * PEEK_BYTES in memory.
 */
export class PeekingSink extends Writable {
  readonly peeked: Buffer[] = [];
  peekedBytes = 0;
  /** The whole body is in `peeked`. */
  ended = false;
  readonly ready: Promise<void>;
  private resolveReady!: () => void;
  private held: ((err?: Error | null) => void) | null = null;
  private heldFinal: ((err?: Error | null) => void) | null = null;
  private target: ServerResponse | null = null;

  constructor() {
    super();
    this.ready = new Promise((resolve) => (this.resolveReady = resolve));
  }

  /** What was peeked, as one buffer. */
  head(): Buffer {
    return this.peeked.length === 1 ? this.peeked[0]! : Buffer.concat(this.peeked);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.target) return forward(this.target, chunk, callback);
    this.peeked.push(chunk);
    this.peekedBytes += chunk.length;
    if (this.peekedBytes < PEEK_BYTES) return callback();
    this.held = callback;
    this.resolveReady();
  }

  override _final(callback: (err?: Error | null) => void): void {
    if (this.target) {
      this.target.end();
      return callback();
    }
    this.ended = true;
    this.heldFinal = callback;
    this.resolveReady();
  }

  /**
   * Sends the answer on to `res` (whose head the caller has written): `first` in place of the
   * peeked bytes (e.g. with keys masked), then the rest as it comes.
   */
  passOn(res: ServerResponse, first: Buffer): void {
    this.target = res;
    if (first.length > 0) res.write(first);
    if (this.ended) {
      res.end();
      this.heldFinal?.();
    } else {
      const held = this.held;
      this.held = null;
      held?.();
    }
  }
}

/**
 * The body of a 2xx create on its way to the caller, its first bytes read for the access_token;
 * `beforeEnd` runs before the caller's answer ends (the pin is recorded first, so the caller's
 * next call, made as soon as it has the answer, finds it).
 */
export class SniffingSink extends Writable {
  private sniffed: Buffer[] = [];
  private sniffedBytes = 0;

  constructor(
    private readonly res: ServerResponse,
    private readonly limitBytes: number,
    private readonly beforeEnd: (head: Buffer) => Promise<void>,
  ) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.sniffedBytes < this.limitBytes) {
      this.sniffed.push(chunk);
      this.sniffedBytes += chunk.length;
    }
    forward(this.res, chunk, callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    const head = Buffer.concat(this.sniffed).subarray(0, this.limitBytes);
    this.sniffed = [];
    this.beforeEnd(head)
      .catch(() => undefined)
      .finally(() => {
        this.res.end();
        callback();
      });
  }
}
