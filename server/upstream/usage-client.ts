import { request } from 'undici';
import { maskKey } from '../../shared/keys.js';
import type { UpstreamAgents } from './agents.js';
import { upstreamUrl, type KindwiseUpstream } from './config.js';
import type { UsageAnswer } from './kindwise.js';

/** Asks an upstream about one key. Never throws: a failure is an answer with `error`. */
export type UsageFetcher = (upstream: KindwiseUpstream, key: string) => Promise<UsageAnswer>;

/** Bodies larger than this are not usage_info (which is a few hundred bytes); read no further. */
const MAX_BODY_BYTES = 64 * 1024;

/** Why a request failed, in a line that names no key: the error code, or a timeout. */
export function requestFailure(err: unknown, timeoutMs: number): string {
  const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
  if (
    e.name === 'TimeoutError' ||
    e.name === 'AbortError' ||
    e.code === 'UND_ERR_HEADERS_TIMEOUT' ||
    e.code === 'UND_ERR_BODY_TIMEOUT'
  )
    return `timed out after ${timeoutMs} ms`;
  const code = e.code ?? e.cause?.code;
  return code
    ? `${code}${e.cause?.message && !e.cause.message.includes(code) ? ` (${e.cause.message})` : ''}`
    : e.message;
}

/**
 * usage_info over undici: `GET <origin><usagePath>` with the key in `Api-Key`, on the origin's
 * agent, bounded by `timeoutMs`. undici's request follows no redirect, so a key goes to its
 * origin only. The key
 * is cut out of anything the answer echoes, so no log or stats line can carry it.
 */
export function createUsageFetcher(agents: UpstreamAgents, timeoutMs: number): UsageFetcher {
  return async (upstream, key) => {
    const url = upstreamUrl(upstream, upstream.usagePath);
    try {
      const res = await request(url, {
        method: 'GET',
        headers: { 'api-key': key, accept: 'application/json' },
        dispatcher: agents.for(upstream.origin),
        signal: AbortSignal.timeout(timeoutMs),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      let body = '';
      for await (const chunk of res.body) {
        body += (chunk as Buffer).toString('utf8');
        if (body.length > MAX_BODY_BYTES) {
          res.body.destroy();
          break;
        }
      }
      return { status: res.statusCode, body: body.split(key).join(maskKey(key)) };
    } catch (err) {
      return { error: `GET ${url.origin}${url.pathname}: ${requestFailure(err, timeoutMs)}` };
    }
  };
}
