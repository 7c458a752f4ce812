import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { EventEmitter } from 'node:events';
import type { Writable } from 'node:stream';
import { stream, type Dispatcher } from 'undici';
import { requestFailure } from '../upstream/usage-client.js';
import { PeekingSink } from './answer.js';

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
  /** The request body in its pieces (sent one after another), or null. */
  body: readonly Buffer[] | null;
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
export function sendAttempt(
  out: Outgoing,
  pass: (status: number, headers: IncomingHttpHeaders) => Writable | null,
): Promise<Sent> {
  return new Promise<Sent>((resolve) => {
    const signal = new StopSignal();
    let timedOut = false;
    let settled = false;
    let head: { status: number; headers: IncomingHttpHeaders; sink: PeekingSink | null } | null = null;
    const onGone = () => signal.fire();
    const timer = setTimeout(() => {
      timedOut = true;
      signal.fire();
    }, out.timeoutMs);
    const settle = (sent: Sent) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      out.callerGone.off('abort', onGone);
      resolve(sent);
    };
    out.callerGone.once('abort', onGone);
    if (out.callerGone.aborted) signal.fire();
    stream(
      out.url,
      {
        method: out.method as Dispatcher.HttpMethod,
        headers: out.headers,
        // undici sends an iterable piece by piece; its types name only the single-piece bodies.
        body: (out.body === null ? null : out.body.length === 1 ? out.body[0]! : out.body) as Buffer | null,
        dispatcher: out.dispatcher,
        signal,
        headersTimeout: out.timeoutMs,
        bodyTimeout: out.timeoutMs,
      },
      ({ statusCode, headers }) => {
        clearTimeout(timer);
        const to = pass(statusCode, headers);
        if (to !== null) {
          head = { status: statusCode, headers, sink: null };
          return to;
        }
        const sink = new PeekingSink();
        head = { status: statusCode, headers, sink };
        // Held once its first bytes are in (or all of it): the proxy decides what becomes of the rest.
        void sink.ready.then(() => settle({ kind: 'held', status: statusCode, headers, sink }));
        return sink;
      },
    ).then(
      () => {
        // A held answer that ended within its peek was settled by its sink.
        const h = head as { status: number; sink: PeekingSink | null } | null;
        if (h && !h.sink) settle({ kind: 'streamed', status: h.status, broken: false });
      },
      (err: unknown) => {
        const h = head as { status: number; sink: PeekingSink | null } | null;
        if (out.callerGone.aborted) return settle({ kind: 'gone', answered: h !== null });
        if (h && !h.sink) return settle({ kind: 'streamed', status: h.status, broken: true });
        if (h?.sink)
          return settle({
            kind: 'failed',
            why: requestFailure(err, out.timeoutMs),
            timedOut: false,
            code: (err as { code?: string }).code,
          });
        if (timedOut)
          return settle({
            kind: 'failed',
            why: `timed out after ${out.timeoutMs} ms`,
            timedOut: true,
            code: 'UND_ERR_HEADERS_TIMEOUT',
          });
        const why = requestFailure(err, out.timeoutMs);
        settle({ kind: 'failed', why, timedOut: why.startsWith('timed out'), code: (err as { code?: string }).code });
      },
    );
  });
}

/** Writes an answer's head to the caller with Keywarden's two headers. */
export function writeHead(res: ServerResponse, status: number, flat: string[], keyId: string, attempts: number): void {
  res.writeHead(status, [...flat, 'x-keywarden-key-id', keyId, 'x-keywarden-attempts', String(attempts)]);
}
