import type { IncomingHttpHeaders } from 'node:http';
import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import type { Context } from 'koa';
import { stream, type Dispatcher } from 'undici';
import type { Logger } from '../../shared/logger.js';
import { POOL_NAME } from '../config.js';
import type { Handout } from '../pools/contract.js';
import type { PoolRegistry } from '../pools/registry.js';
import type { UpstreamAgents } from '../upstream/agents.js';
import { upstreamUrl, type UpstreamConfig } from '../upstream/config.js';
import { keyHeader, keyHeaderLine, presentedToken, upstreamPathAndQuery } from '../upstream/credentials.js';
import { judgeAttempt, mayFailOver, mayResend, neverSent, refusedTheKey, type AttemptVerdict } from '../upstream/proxy-outcome.js';
import { requestFailure } from '../upstream/usage-client.js';
import { bearer, type Auth } from './auth.js';
import { readBody } from './body.js';
import { ReplayableBody } from './replayable-body.js';
import { HttpError, unauthorized, unavailable, unknownPool } from './errors.js';
import type { Metrics } from './metrics.js';

/** The route label proxied requests carry in metrics. */
export const PROXY_ROUTE = '/proxy/:pool';

/** `/proxy/<pool>[/<path>][?<query>]` on the raw URL. */
const PROXY_URL = /^\/proxy\/([^/?]+)(\/[^?]*)?(?:\?(.*))?$/su;

export interface ProxyTarget {
  pool: string;
  /** The path to send upstream (at least `/`). */
  path: string;
  /** The raw query, without `?`. */
  query: string;
}

/** The pool and upstream path of a proxy URL, or null when the URL is not one. */
export function proxyTarget(url: string): ProxyTarget | null {
  if (!url.startsWith('/proxy/')) return null;
  const m = PROXY_URL.exec(url);
  return m === null ? null : { pool: m[1]!, path: m[2] ?? '/', query: m[3] ?? '' };
}

/** Connection-level headers (RFC 9110 7.6.1): they describe one hop and are never passed on. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'proxy-authorization']);
/** Besides those, what a request upstream never carries from the caller: its Host, its credentials, its length (the body is re-sent whole). */
const NOT_FORWARDED = new Set([...HOP_BY_HOP, 'host', 'authorization', 'content-length', 'expect']);

/** The names a Connection header lists: hop-by-hop too. */
function connectionListed(value: string | string[] | undefined): Set<string> {
  const text = Array.isArray(value) ? value.join(',') : (value ?? '');
  return new Set(text.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean));
}

/** The caller's headers to send upstream, in their order and spelling, without what must not go. */
function forwardHeaders(raw: readonly string[], keyHeaderName: string | null, listed: Set<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (NOT_FORWARDED.has(name) || name === keyHeaderName || listed.has(name)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

/** An upstream answer's headers for the caller, without hop-by-hop ones, as a flat list for writeHead. */
function answerHeaders(headers: IncomingHttpHeaders): string[] {
  const listed = connectionListed(headers.connection);
  const out: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || listed.has(name)) continue;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, value);
  }
  return out;
}

/** A Writable that keeps what it is given (up to `limitBytes`; past it, the rest is dropped). */
function collector(chunks: Buffer[], limitBytes: number): Writable {
  let size = 0;
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      size += chunk.length;
      if (size <= limitBytes) chunks.push(chunk);
      callback();
    },
  });
}

/** The attempt outcome metrics count an answer under. */
function attemptOutcome(status: number): 'ok' | 'invalid' | 'refused' | 'error' {
  if (status >= 500) return 'error';
  if (status === 401 || status === 403) return 'invalid';
  return status === 429 ? 'refused' : 'ok';
}

/** An upstream answer's head, where its body went, and (held for a retry) the body. */
interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  passOn: boolean;
  chunks: Buffer[];
}

/** The caller went away: an abort signal undici reads as an emitter (`aborted`, an 'abort' event). */
class CallerGone extends EventEmitter {
  aborted = false;

  fire(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.emit('abort');
  }
}

/** An upstream answer read whole (one that may be retried), kept to pass on if it is the last. */
interface HeldAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** One key tried: its keyId and what came of it (a status, or why there was none), for the log line. */
interface Attempt {
  keyId: string;
  result: number | string;
}

export interface ProxyDeps {
  registry: PoolRegistry;
  upstreams: ReadonlyMap<string, UpstreamConfig>;
  /** Pools whose proxied POSTs may be sent again after a 5xx or a timeout (`proxyRetryPost`). */
  retryPost: ReadonlySet<string>;
  /** Pools whose upstream's verdicts a usage sync lifts again (Kindwise): a 401 there is the upstream's word, not a disable. */
  synced: ReadonlySet<string>;
  agents: UpstreamAgents;
  auth: Auth;
  logger: Logger;
  metrics: Metrics;
  maxAttempts: number;
  maxBodyBytes: number;
  timeoutMs: number;
}

const NO_KEY = { no_key_available: [503, 'has no usable key right now'], pool_rate_limited: [429, 'reached its poolPerMinute limit'], pool_throttled: [429, 'is throttled upstream (many keys reported 429 at once)'] } as const;

/**
 * `/proxy/<pool>/<path>`: the caller's request sent to the pool's upstream with a key of the pool
 * put in, each attempt a handout under the pool's strategy and limits, its outcome reported by
 * the proxy itself. A key the upstream refuses (401, 403, 429) is swapped for another within the
 * same request; a 5xx or a timeout is sent again only where a second send cannot spend twice. The
 * answer streams back as it arrives. The caller never sees a key, and the upstream never sees the
 * caller's token.
 */
export function createProxy(deps: ProxyDeps): (ctx: Context, target: ProxyTarget) => Promise<void> {
  const { registry, logger, metrics } = deps;

  /** What an attempt's answer means for its key, recorded in the pool (never fails the request). */
  const record = async (pool: string, keyId: string, status: number, v: AttemptVerdict): Promise<void> => {
    try {
      switch (v.outcome) {
        case 'ok':
          await registry.report(pool, { keyId, outcome: 'ok' });
          break;
        case 'invalid':
          if (deps.synced.has(pool)) await registry.recordUpstream(pool, { reached: true, keyId, finding: { status: 'invalid', reason: v.reason }, credits: null, viaProxy: true });
          else await registry.report(pool, { keyId, status });
          break;
        case 'exhausted':
          await registry.recordUpstream(pool, { reached: true, keyId, finding: { status: 'exhausted', reason: v.reason, window: v.window }, credits: null, viaProxy: true });
          break;
        case 'rate_limited':
          await registry.report(pool, { keyId, outcome: 'rate_limited', ...(v.retryAfterSec === null ? {} : { retryAfterSec: v.retryAfterSec }) });
          break;
        case 'error':
          await registry.report(pool, { keyId, outcome: 'error' });
          break;
      }
    } catch (err) {
      logger.warn(`proxy ${pool}: recording the outcome for key ${keyId} failed: ${(err as Error).message}`, { pool, keyId });
    }
  };

  return async (ctx, target) => {
    const started = performance.now();
    const { pool } = target;
    if (!POOL_NAME.test(pool) || !registry.has(pool)) throw unknownPool(pool);
    const upstream = deps.upstreams.get(pool);
    if (!upstream) throw new HttpError(404, 'no_upstream', `pool ${pool} has no upstream to proxy to (pools.json "upstream")`);

    // The caller's token: a bearer token, or in the upstream's key header (an SDK's api_key).
    const headerName = keyHeader(upstream);
    const presented = [bearer(ctx.get('authorization')), presentedToken(upstream, headerName ? ctx.get(headerName) || undefined : undefined, upstream.type === 'query' ? new URLSearchParams(target.query) : null)];
    if (!presented.some((t) => t !== null && deps.auth.isApiToken(t)) && !deps.auth.isApiToken(null)) throw unauthorized();

    const method = ctx.method;
    const headers = forwardHeaders(ctx.req.rawHeaders, headerName, connectionListed(ctx.req.headers.connection));
    // The body is kept for a failover to send again. With a declared length (over the limit is
    // a 413 here, before anything is sent) it goes upstream as it arrives; without one it is read
    // whole first, since it may turn out too large. Pieces go as they came (undici writes an
    // iterable piece by piece), never copied into one buffer.
    const declared = Number(ctx.get('content-length') || NaN);
    let bodyFor: () => Buffer | AsyncIterable<Buffer> | Buffer[] | null = () => null;
    if (Number.isFinite(declared) && declared > 0) {
      if (declared > deps.maxBodyBytes) await readBody(ctx, deps.maxBodyBytes); // rejects: 413
      const live = new ReplayableBody(ctx.req);
      bodyFor = () => live.read();
      headers.push('content-length', String(declared));
    } else if (ctx.get('transfer-encoding') !== '') {
      const pieces = await readBody(ctx, deps.maxBodyBytes);
      bodyFor = () => (pieces.length === 1 ? pieces[0]! : pieces);
      headers.push('content-length', String(pieces.reduce((n, p) => n + p.length, 0)));
    }
    const retryPost = deps.retryPost.has(pool);

    // A caller that goes away aborts whatever is under way upstream. An emitter, not an
    // AbortController: undici takes either, and this one costs nothing until it fires.
    const gone = new CallerGone();
    ctx.res.once('close', () => {
      if (!ctx.res.writableFinished) gone.fire();
    });

    const attempts: Attempt[] = [];
    let held: HeldAnswer | null = null;
    let failure: string | null = null;
    let timedOut = false;
    let keyId = '';
    const done = (status: number) => {
      metrics.proxyRequest(pool, status);
      const ms = Math.round(performance.now() - started);
      logger.info(`proxy ${pool} ${method} ${target.path} -> ${status} in ${ms} ms (${attempts.map((a) => `${a.keyId} ${a.result}`).join(', ') || 'no key'})`, { pool, status, ms });
    };

    for (let i = 0; i < deps.maxAttempts; i++) {
      const handout: Handout = await registry.handout(pool);
      if (!handout.ok) {
        if (attempts.length > 0) break; // pass on what the last key got
        const [status, what] = NO_KEY[handout.reason];
        done(status);
        throw unavailable(status, handout.reason, `pool ${pool} ${what}`, handout.retryAfterMs);
      }
      keyId = handout.keyId;
      const headerLine = keyHeaderLine(upstream, handout.key);
      const url = upstreamUrl(upstream, upstreamPathAndQuery(upstream, target.path, target.query, handout.key));
      const attemptStarted = performance.now();
      let answer: Answer | null = null;
      try {
        // undici's stream(): the answer's head decides where its body goes: on to the caller as
        // it arrives, or (an answer that may be retried) into memory to be read and held.
        await stream(
          url,
          {
            method: method as Dispatcher.HttpMethod,
            headers: headerLine ? [...headers, ...headerLine] : headers,
            // undici sends an iterable piece by piece; its types name only the single-piece bodies.
            body: bodyFor() as Buffer | null,
            dispatcher: deps.agents.for(upstream.origin),
            signal: gone,
            headersTimeout: deps.timeoutMs,
            bodyTimeout: deps.timeoutMs,
          },
          ({ statusCode, headers: answerHead }) => {
            const passOn = !mayFailOver(statusCode) || (statusCode >= 500 && !mayResend(method, retryPost));
            answer = { status: statusCode, headers: answerHead, passOn, chunks: [] };
            attempts.push({ keyId, result: statusCode });
            metrics.proxyAttempt(pool, attemptOutcome(statusCode), (performance.now() - attemptStarted) / 1000);
            if (!passOn) return collector(answer.chunks, deps.maxBodyBytes);
            ctx.respond = false;
            ctx.res.writeHead(statusCode, [...answerHeaders(answerHead), 'x-keywarden-key-id', keyId, 'x-keywarden-attempts', String(attempts.length)]);
            return ctx.res;
          },
        );
      } catch (err) {
        const a = answer as Answer | null;
        if (gone.aborted) {
          if (a === null) attempts.push({ keyId, result: 'caller gone' });
          ctx.respond = false; // nobody to answer
          return done(499);
        }
        if (a?.passOn) {
          // The upstream broke off mid-body, after the head went to the caller: cut the caller too.
          ctx.res.destroy();
          await record(pool, keyId, 0, { outcome: 'error' });
          return done(a.status);
        }
        if (a === null) {
          const code = (err as { code?: string }).code;
          const why = requestFailure(err, deps.timeoutMs);
          failure = `${url.origin}${url.pathname}: ${why}`;
          timedOut = why.startsWith('timed out');
          attempts.push({ keyId, result: why });
          metrics.proxyAttempt(pool, 'error', (performance.now() - attemptStarted) / 1000);
          // Refused before a byte went out: the key is not to blame, and sending again is safe.
          if (neverSent(code)) continue;
          await record(pool, keyId, 0, { outcome: 'error' });
          if (mayResend(method, retryPost)) continue;
          break;
        }
        logger.debug(`proxy ${pool}: reading a ${a.status} answer failed: ${(err as Error).message}`);
      }
      const a = answer as Answer | null;
      if (a === null) continue; // unreachable: stream() resolves only after the head
      if (a.passOn) {
        await record(pool, keyId, a.status, a.status >= 500 ? { outcome: 'error' } : { outcome: 'ok' });
        return done(a.status);
      }
      const text = Buffer.concat(a.chunks);
      const retryAfter = a.headers['retry-after'];
      // Wall-clock time: a Retry-After date is the upstream's wall clock too.
      const verdict = judgeAttempt(upstream, a.status, text.toString('utf8'), Array.isArray(retryAfter) ? retryAfter[0] : retryAfter, Date.now());
      await record(pool, keyId, a.status, verdict);
      held = { status: a.status, headers: a.headers, body: text };
      if (!refusedTheKey(verdict) && verdict.outcome !== 'error') break;
    }

    if (held) {
      // Every key was refused (or the upstream failed each time): the caller gets the last answer as it was.
      ctx.respond = false;
      ctx.res.writeHead(held.status, [...dropLength(answerHeaders(held.headers)), 'content-length', String(held.body.length), 'x-keywarden-key-id', keyId, 'x-keywarden-attempts', String(attempts.length)]);
      ctx.res.end(held.body);
      return done(held.status);
    }
    const status = timedOut ? 504 : 502;
    done(status);
    throw new HttpError(status, timedOut ? 'upstream_timeout' : 'upstream_unreachable', `the upstream of pool ${pool} did not answer (${failure ?? 'no attempt'}) after ${attempts.length} attempt(s)`, { attempts: attempts.length });
  };
}

/** A flat header list without content-length (its body is re-sent with a length of its own). */
function dropLength(flat: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < flat.length; i += 2) if (flat[i] !== 'content-length') out.push(flat[i]!, flat[i + 1]!);
  return out;
}
