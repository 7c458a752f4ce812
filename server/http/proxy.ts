import type { Context } from 'koa';
import { POOL_NAME } from '../config.js';
import type { UpstreamConfig } from '../upstream/config.js';
import { keyHeader, presentedToken } from '../upstream/credentials.js';
import { connectionListed } from '../proxy/answer.js';
import { createForwarder, type ForwardDeps } from '../proxy/forward.js';
import { forwardHeaders, type ProxyTarget } from '../proxy/request.js';
import { bearer, proxySpender, type Auth, type Caller } from './auth.js';
import { readBody } from './body.js';
import { HttpError, unknownPool } from './errors.js';

export { proxyTarget, type ProxyTarget } from '../proxy/request.js';

/** The route label proxied requests carry in metrics. */
export const PROXY_ROUTE = '/proxy/:pool';

export interface ProxyDeps extends ForwardDeps {
  upstreams: ReadonlyMap<string, UpstreamConfig>;
  auth: Auth;
  /** Lets a caller in or throws (an app over its ratePerMinute). */
  admit: (caller: Caller) => void;
  maxBodyBytes: number;
  bodyTimeoutMs: number;
}

/**
 * `/proxy/<pool>/<path>` as Koa sees it: the pool and its upstream, the caller's token (a bearer
 * token, or in the upstream's key header as an SDK sends its api_key), the headers that go on,
 * and the body received whole; then proxy/forward.ts sends it (see createForwarder).
 */
export function createProxy(deps: ProxyDeps): (ctx: Context, target: ProxyTarget) => Promise<void> {
  const { registry } = deps;
  const forward = createForwarder(deps);
  return async (ctx, target) => {
    const startedAt = performance.now();
    const { pool } = target;
    if (!POOL_NAME.test(pool) || !registry.has(pool)) throw unknownPool(pool);
    const upstream = deps.upstreams.get(pool);
    if (!upstream)
      throw new HttpError(404, 'no_upstream', `pool ${pool} has no upstream to proxy to (pools.json "upstream")`);

    // The caller's token: a bearer token, or in the upstream's key header (an SDK's api_key).
    const headerName = keyHeader(upstream);
    const presented = [
      bearer(ctx.get('authorization')),
      presentedToken(
        upstream,
        headerName ? ctx.get(headerName) || undefined : undefined,
        upstream.type === 'query' ? new URLSearchParams(target.query) : null,
      ),
    ];
    const caller = (ctx.state.caller = deps.auth.callerOf(presented));
    const spender = proxySpender(caller, pool);
    deps.admit(caller);

    const headers = forwardHeaders(ctx.req.rawHeaders, headerName, connectionListed(ctx.req.headers.connection));
    // The body is received whole before any upstream connection is taken for it, so a caller
    // that sends slowly holds nothing but its own socket; it is kept for a failover.
    // Pieces go as they came (undici writes an iterable piece by piece), never copied into one buffer.
    let body: Buffer[] | null = null;
    if (Number(ctx.get('content-length') || 0) > 0 || ctx.get('transfer-encoding') !== '') {
      body = await readBody(ctx, deps.maxBodyBytes, deps.bodyTimeoutMs);
      headers.push('content-length', String(body.reduce((n, p) => n + p.length, 0)));
    }
    await forward({
      startedAt,
      pool,
      upstream,
      method: ctx.method,
      path: target.path,
      query: target.query,
      headers,
      body,
      res: ctx.res,
      spender,
      takeOver: () => {
        ctx.respond = false;
      },
    });
  };
}
