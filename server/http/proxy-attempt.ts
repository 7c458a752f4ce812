import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { EventEmitter } from 'node:events';
import type { Writable } from 'node:stream';
import { stream, type Dispatcher } from 'undici';
import { requestFailure } from '../upstream/usage-client.js';
import { PeekingSink } from './proxy-answer.js';

/** A stop signal undici reads as an emitter (`aborted`, an 'abort' event): costs nothing until it fires. */
export class StopSignal extends EventEmitter {
  aborted = false;

  fire(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.emit('abort');
  }
}

/** One request to the upstream, as the proxy sends it. */
export interface Outgoing {
  url: URL;
  method: string;
  headers: string[];
  body: Buffer | null;
  dispatcher: Dispatcher;
  /** How long the answer's head may take, the wait for a connection included. */
  timeoutMs: number;
  /** The caller went away. */
  callerGone: StopSignal;
}

/** What became of one attempt. */
export type Sent =
  /** The answer went on to the caller as it arrived (`broken`: the upstream cut it off mid-body). */
  | { kind: 'streamed'; status: number; broken: boolean }
  /** The answer waits, its first bytes read: the proxy drops it (`sink.destroy()`) or passes it on (`sink.passOn`). */
  | { kind: 'held'; status: number; headers: IncomingHttpHeaders; sink: PeekingSink }
  /** No answer: `why` for the log, `code` the connection error's. */
  | { kind: 'failed'; why: string; timedOut: boolean; code: string | undefined }
  /** The caller went away first. */
  | { kind: 'gone'; answered: boolean };

/**
 * Sends one attempt. The answer's head decides where its body goes: `pass(status, headers)`
 * returns the Writable for an answer that goes on to the caller as it arrives (having written
 * the caller's head), or null for one the proxy must read first (held, see PeekingSink).
 * Resolves when a streamed answer is done, once a held one is peeked, or on failure.
 */
export async function sendAttempt(out: Outgoing, pass: (status: number, headers: IncomingHttpHeaders) => Writable | null): Promise<Sent> {
  const signal = new StopSignal();
  let timedOut = false;
  const onGone = () => signal.fire();
  out.callerGone.once('abort', onGone);
  if (out.callerGone.aborted) signal.fire();
  const timer = setTimeout(() => {
    timedOut = true;
    signal.fire();
  }, out.timeoutMs);
  let head: { status: number; headers: IncomingHttpHeaders; sink: PeekingSink | null } | null = null;
  let headSeen!: () => void;
  const headArrived = new Promise<void>((resolve) => (headSeen = resolve));
  const done = stream(
    out.url,
    {
      method: out.method as Dispatcher.HttpMethod,
      headers: out.headers,
      body: out.body,
      dispatcher: out.dispatcher,
      signal,
      headersTimeout: out.timeoutMs,
      bodyTimeout: out.timeoutMs,
    },
    ({ statusCode, headers }) => {
      clearTimeout(timer);
      const to = pass(statusCode, headers);
      head = { status: statusCode, headers, sink: to === null ? new PeekingSink() : null };
      headSeen();
      return to ?? head.sink!;
    },
  ).then(
    () => null,
    (err: unknown) => err,
  );
  try {
    await Promise.race([headArrived, done]);
    const h = head as { status: number; headers: IncomingHttpHeaders; sink: PeekingSink | null } | null;
    if (h?.sink) {
      const failed = await Promise.race([h.sink.ready.then(() => null), done]);
      if (failed === null) return { kind: 'held', status: h.status, headers: h.headers, sink: h.sink };
      return out.callerGone.aborted ? { kind: 'gone', answered: true } : { kind: 'failed', why: requestFailure(failed, out.timeoutMs), timedOut: false, code: (failed as { code?: string }).code };
    }
    const err = await done;
    if (h) return out.callerGone.aborted && err !== null ? { kind: 'gone', answered: true } : { kind: 'streamed', status: h.status, broken: err !== null };
    if (out.callerGone.aborted) return { kind: 'gone', answered: false };
    if (timedOut) return { kind: 'failed', why: `timed out after ${out.timeoutMs} ms`, timedOut: true, code: 'UND_ERR_HEADERS_TIMEOUT' };
    const why = requestFailure(err, out.timeoutMs);
    return { kind: 'failed', why, timedOut: why.startsWith('timed out'), code: (err as { code?: string }).code };
  } finally {
    clearTimeout(timer);
    out.callerGone.off('abort', onGone);
  }
}

/** Writes an answer's head to the caller with Keywarden's two headers. */
export function writeHead(res: ServerResponse, status: number, flat: string[], keyId: string, attempts: number): void {
  res.writeHead(status, [...flat, 'x-keywarden-key-id', keyId, 'x-keywarden-attempts', String(attempts)]);
}
