import type { ServerResponse } from 'node:http';
import { accessLogger, type Logger } from '../../shared/logger.js';
import { HttpError, noKeyError, unavailable } from '../errors.js';
import type { PoolKey, PoolRegistry } from '../pools/registry.js';
import type { UpstreamAgents } from '../upstream/agents.js';
import type { AppTraffic } from '../apps/traffic.js';
import type { Spender } from '../pools/budgets.js';
import { upstreamUrl, type UpstreamConfig } from '../upstream/config.js';
import { keyHeaderLine, upstreamPathAndQuery } from '../upstream/credentials.js';
import { maskBody, maskHeaders, maskKeysIn } from '../upstream/key-mask.js';
import { accessTokenIn, ACCESS_TOKEN_SCAN_BYTES, priceOf, type Price } from '../upstream/prices.js';
import {
  judgeAttempt,
  mayFailOver,
  mayResend,
  neverSent,
  refusedTheKey,
  type AttemptVerdict,
} from '../upstream/proxy-outcome.js';
import type { RefusalJudge } from '../upstream/refusals.js';
import { answerHeaders, SniffingSink, withoutLength } from './answer.js';
import { sendAttempt, StopSignal, writeHead, type Sent } from './attempt.js';
import { attemptOutcome } from './request.js';
import { recordVerdict } from './verdicts.js';

/** One key tried: its keyId and what came of it (a status, or why there was none), for the log line. */
interface Attempt {
  keyId: string;
  result: number | string;
}

/** What a proxied request counts: the requests and their answers, each attempt, what each spent. */
export interface ProxyMetrics {
  proxyRequest(pool: string, status: number): void;
  proxyAttempt(pool: string, outcome: 'ok' | 'invalid' | 'refused' | 'error', seconds: number): void;
  proxySpent(pool: string, credits: number): void;
}

export interface ForwardDeps {
  registry: PoolRegistry;
  /** Pools whose proxied POSTs may be sent again after a 5xx or a timeout (`proxyRetryPost`). */
  retryPost: ReadonlySet<string>;
  /** What a 401 or 403 does to its key: a usage check where the upstream has one, else a backoff. */
  refusals: RefusalJudge;
  agents: UpstreamAgents;
  logger: Logger;
  metrics: ProxyMetrics;
  clock: () => number;
  maxAttempts: number;
  timeoutMs: number;
  maxRetryAfterSec: number;
  /** One info line per proxied request (LOG_ACCESS). */
  accessLog: boolean;
  /** Apps' failovers on this instance. */
  traffic?: AppTraffic;
}

/** A caller's request as the HTTP layer hands it over: checked (pool, token) and read whole. */
export interface ProxiedRequest {
  /** When the request arrived (performance.now()), for the log line's time. */
  startedAt: number;
  pool: string;
  upstream: UpstreamConfig;
  method: string;
  path: string;
  query: string;
  /** The caller's headers that go upstream (flat: name, value, …), the body's length among them. */
  headers: string[];
  /** The body in the pieces it arrived in, or null. */
  body: Buffer[] | null;
  /** Where the answer goes. */
  res: ServerResponse;
  /** The app it is for: its creates are charged to its budget (none: an API_TOKENS token). */
  spender?: Spender;
  /** Called when the proxy writes the answer itself (the HTTP layer then leaves it alone). */
  takeOver: () => void;
}

/** An error answer held back and read (see PeekingSink), with what it says of its key. */
type Held = Extract<Sent, { kind: 'held' }> & { verdict: AttemptVerdict; keyId: string };

/**
 * A proxied request sent to the pool's upstream with a key of the pool
 * put in, priced first (upstream/prices.ts). A create spends credits: a handout of its price
 * under the pool's strategy and limits, given back when the upstream's answer shows nothing was
 * charged; its answer's access_token pins the key. A call naming an identification goes to its
 * pinned key (found by asking the keys in turn, free, when Keywarden has not seen it); a free
 * call goes to any key that answers, moving no rotation and spending no limit. A refused key
 * (401, 403, 429) is swapped for another within the request; a 5xx or a timeout is sent again
 * only where a second send cannot spend twice. Success bodies stream through unread; of an error
 * answer at most 64 KiB is read (to judge it, with any pool key in it masked) and the rest is
 * streamed or dropped. The caller never sees a key, and the upstream never sees the caller's token.
 */
export function createForwarder(deps: ForwardDeps): (req: ProxiedRequest) => Promise<void> {
  const { registry, logger, metrics, accessLog } = deps;

  return async (req) => {
    const { startedAt: started, pool, upstream, method, path, query, headers, body, res, takeOver, spender } = req;
    const app = spender?.app;
    /** How the request's own log lines name its app (every line of a request does). */
    const by = app === undefined ? '' : ` for app ${app}`;
    const record = (pool: string, key: PoolKey, v: AttemptVerdict) => recordVerdict(deps, pool, key, v, by);
    const price: Price = priceOf(upstream, method, path, query, body);

    const callerGone = new StopSignal();
    res.once('close', () => {
      if (!res.writableFinished) callerGone.fire();
    });
    const isPoolKey = registry.isPoolKey(pool);
    const sentKeys: string[] = [];
    const attempts: Attempt[] = [];
    const spent = (credits: number) => {
      registry.countSpent(pool, credits, app);
      metrics.proxySpent(pool, credits);
    };
    const done = (status: number) => {
      metrics.proxyRequest(pool, status);
      registry.countProxyRequest(pool, attempts.length);
      if (app !== undefined) deps.traffic?.failedOver(app, pool, attempts.length - 1);
      const ms = Math.round(performance.now() - started);
      const loggedPath = maskKeysIn(path, sentKeys, isPoolKey);
      const tried = attempts.map((a) => `${a.keyId} ${a.result}`).join(', ') || 'no key';
      if (accessLog)
        accessLogger(logger)(`proxy ${pool} ${method} ${loggedPath}${by} -> ${status} in ${ms} ms (${tried})`, {
          pool,
          status,
          ms,
          ...(app === undefined ? {} : { app }),
        });
    };

    /** Sends the request with `key`; `hold` says which statuses are read before they go on. */
    const attempt = async (
      key: PoolKey,
      hold: (status: number) => boolean,
      passTo?: (status: number) => SniffingSink | null,
    ): Promise<Sent> => {
      sentKeys.push(key.key);
      const headerLine = keyHeaderLine(upstream, key.key);
      const url = upstreamUrl(upstream, upstreamPathAndQuery(upstream, path, query, key.key));
      const attemptStarted = performance.now();
      const sent = await sendAttempt(
        {
          url,
          method,
          headers: headerLine ? [...headers, ...headerLine] : headers,
          body,
          dispatcher: deps.agents.for(upstream.origin),
          timeoutMs: deps.timeoutMs,
          callerGone,
        },
        (status, head) => {
          attempts.push({ keyId: key.keyId, result: status });
          metrics.proxyAttempt(pool, attemptOutcome(status), (performance.now() - attemptStarted) / 1000);
          if (hold(status)) return null;
          writeHead(res, status, maskHeaders(answerHeaders(head), sentKeys, isPoolKey), key.keyId, attempts.length);
          takeOver();
          return passTo?.(status) ?? res;
        },
      );
      if (sent.kind === 'failed') {
        attempts.push({ keyId: key.keyId, result: sent.why });
        metrics.proxyAttempt(pool, 'error', (performance.now() - attemptStarted) / 1000);
      } else if (sent.kind === 'gone' && !sent.answered) attempts.push({ keyId: key.keyId, result: 'caller gone' });
      return sent;
    };

    /** Reads a held answer (keys masked) and judges it. */
    const judge = (sent: Extract<Sent, { kind: 'held' }>, keyId: string): Held => {
      const text = maskBody(sent.sink.head(), sentKeys, isPoolKey).toString('utf8');
      const retryAfter = sent.headers['retry-after'];
      // Wall-clock time: a Retry-After date is the upstream's wall clock too.
      const verdict = judgeAttempt(
        upstream,
        sent.status,
        text,
        Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
        Date.now(),
        deps.maxRetryAfterSec,
      );
      return { ...sent, verdict, keyId };
    };

    /** Passes a held answer on to the caller whole: the peeked part (keys masked), then the rest. */
    const passOn = (held: Held) => {
      const peeked = held.sink.head();
      const first = maskBody(peeked, sentKeys, isPoolKey);
      let flat = maskHeaders(answerHeaders(held.headers), sentKeys, isPoolKey);
      // Masking changes the length; a body read whole gets its new one, one still coming none (chunked).
      if (held.sink.ended) flat = [...withoutLength(flat), 'content-length', String(first.length)];
      else if (first !== peeked) flat = withoutLength(flat);
      writeHead(res, held.status, flat, held.keyId, attempts.length);
      takeOver();
      held.sink.passOn(res, first);
      done(held.status);
    };

    /** The end of a request whose answer went on as it arrived. */
    const streamed = (sent: Extract<Sent, { kind: 'streamed' }>) => {
      if (sent.broken) res.destroy(); // the upstream broke off mid-body: cut the caller too
      done(sent.status);
    };

    const gone = () => {
      takeOver(); // nobody to answer
      done(499);
    };

    const noAnswer = (failure: Extract<Sent, { kind: 'failed' }> | null): never => {
      const status = failure?.timedOut ? 504 : 502;
      done(status);
      throw new HttpError(
        status,
        failure?.timedOut ? 'upstream_timeout' : 'upstream_unreachable',
        `the upstream of pool ${pool} did not answer (${failure?.why ?? 'no attempt'}) after ${attempts.length} ` +
          `attempt(s)`,
        { attempts: attempts.length },
      );
    };

    // ------------------------------------------------------------ a call naming an identification

    if (price.kind === 'pinned') {
      spent(0);
      const pinnedId = await registry.pinned(pool, price.ref);
      if (pinnedId !== null) {
        const key = await registry.keyById(pool, pinnedId);
        if (key === null || key.status === 'disabled' || key.status === 'invalid' || key.status === 'expired') {
          const why = key === null ? 'removed from the pool' : key.status;
          done(409);
          throw new HttpError(
            409,
            'pinned_key_unavailable',
            `identification ${maskKeysIn(price.ref, [], isPoolKey)} belongs to key ${pinnedId}, which is ` +
              `${why}; no other key can reach it`,
            { keyId: pinnedId, keyStatus: key?.status ?? 'removed' },
          );
        }
        // Whatever the pinned key answers is the answer (a 404 included: no other key has it).
        const sent = await attempt(key, mayFailOver);
        if (sent.kind === 'held') {
          const held = judge(sent, key.keyId);
          await record(pool, key, held.verdict);
          return passOn(held);
        }
        if (sent.kind === 'streamed') return streamed(sent);
        if (sent.kind === 'gone') return gone();
        return noAnswer(sent);
      }
      // Not seen here (made before Keywarden, or evicted): ask each key, free, until one has it.
      let lastNotFound: Held | null = null;
      let failure: Extract<Sent, { kind: 'failed' }> | null = null;
      for await (const key of registry.answeringKeys(pool)) {
        const sent = await attempt(key, (s) => s === 404 || mayFailOver(s));
        if (sent.kind === 'gone') {
          lastNotFound?.sink.destroy();
          return gone();
        }
        if (sent.kind === 'failed') {
          failure = sent;
          continue;
        }
        if (sent.kind === 'streamed') {
          if (sent.status < 300) await registry.pin(pool, [price.ref], key.keyId);
          return streamed(sent);
        }
        const held = judge(sent, key.keyId);
        if (held.status === 404) {
          lastNotFound?.sink.destroy();
          lastNotFound = held;
          continue;
        }
        await record(pool, key, held.verdict);
        if (refusedTheKey(held.verdict) || held.verdict.outcome === 'error') {
          held.sink.destroy();
          continue;
        }
        lastNotFound?.sink.destroy();
        return passOn(held);
      }
      if (lastNotFound) return passOn(lastNotFound);
      if (failure) return noAnswer(failure);
      done(503);
      throw unavailable(503, 'no_key_available', `pool ${pool} has no key the upstream answers for`, null);
    }

    // ------------------------------------------------------------ a free call: any key that answers

    if (price.kind === 'free') {
      spent(0);
      let last: Held | null = null;
      let failure: Extract<Sent, { kind: 'failed' }> | null = null;
      for await (const key of registry.answeringKeys(pool)) {
        if (attempts.length >= deps.maxAttempts) break;
        last?.sink.destroy();
        last = null;
        const sent = await attempt(key, mayFailOver);
        if (sent.kind === 'gone') return gone();
        if (sent.kind === 'streamed') return streamed(sent);
        if (sent.kind === 'failed') {
          failure = sent;
          if (neverSent(sent.code) || mayResend(method, false)) continue;
          return noAnswer(sent);
        }
        last = judge(sent, key.keyId);
        await record(pool, key, last.verdict);
        if (!refusedTheKey(last.verdict) && last.verdict.outcome !== 'error') break;
      }
      if (last) return passOn(last);
      if (failure) return noAnswer(failure);
      done(503);
      throw unavailable(503, 'no_key_available', `pool ${pool} has no key the upstream answers for`, null);
    }

    // ------------------------------------------------------------ a call that spends: a handout of its price

    const retryPost = deps.retryPost.has(pool);
    let last: Held | null = null;
    let failure: Extract<Sent, { kind: 'failed' }> | null = null;
    for (let i = 0; i < deps.maxAttempts; i++) {
      const handout = await registry.handout(pool, price.credits, spender);
      if (!handout.ok) {
        if (attempts.length > 0) break; // pass on what the last key got
        const error = noKeyError(pool, handout, app);
        done(error.status);
        throw error;
      }
      last?.sink.destroy();
      last = null;
      const at = deps.clock();
      const key: PoolKey = { keyId: handout.keyId, key: handout.key, masked: '' };
      const charged = handout.granted;
      /** The upstream charged nothing (a 4xx, or the request never left): the handout's uses go back. */
      const giveBack = () =>
        registry
          .recount(pool, key.keyId, -charged, at, app)
          .catch((err: Error) =>
            logger.warn(`proxy ${pool}${by}: giving back ${charged} for key ${key.keyId} failed: ${err.message}`),
          );
      const pinOnAnswer = (status: number): SniffingSink | null => {
        if (price.kind !== 'create' || status < 200 || status >= 300) return null;
        return new SniffingSink(res, ACCESS_TOKEN_SCAN_BYTES, async (head) => {
          const token = accessTokenIn(head.toString('utf8'));
          const refs = [token, price.customId].filter((r): r is string => r !== null);
          if (refs.length > 0)
            await registry
              .pin(pool, refs, key.keyId)
              .catch((err: Error) =>
                logger.warn(`proxy ${pool}${by}: pinning an identification to key ${key.keyId} failed: ${err.message}`),
              );
        });
      };
      const sent = await attempt(key, mayFailOver, pinOnAnswer);
      if (sent.kind === 'gone') {
        spent(charged); // it may have reached the upstream
        return gone();
      }
      if (sent.kind === 'failed') {
        failure = sent;
        // Refused before a byte went out: the key is not to blame, nothing was spent, and sending again is safe.
        if (neverSent(sent.code)) {
          await giveBack();
          continue;
        }
        spent(charged);
        await record(pool, key, { outcome: 'error' });
        if (mayResend(method, retryPost)) continue;
        break;
      }
      if (sent.kind === 'streamed') {
        if (sent.status >= 400 && sent.status < 500) await giveBack();
        else spent(charged);
        await record(pool, key, sent.broken || sent.status >= 500 ? { outcome: 'error' } : { outcome: 'ok' });
        return streamed(sent);
      }
      last = judge(sent, key.keyId);
      if (last.status < 500) await giveBack();
      else spent(charged);
      await record(pool, key, last.verdict);
      if (last.status >= 500 && !mayResend(method, retryPost)) break;
      if (!refusedTheKey(last.verdict) && last.verdict.outcome !== 'error') break;
    }
    if (last) return passOn(last);
    return noAnswer(failure);
  };
}
