import { createHash, timingSafeEqual } from 'node:crypto';
import type { Context } from 'koa';
import { notFound, unauthorized } from './errors.js';

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Constant-time check of a presented token against every configured token. */
export function tokenMatches(presented: string, tokens: readonly Buffer[]): boolean {
  const p = digest(presented);
  let ok = false;
  for (const t of tokens) ok = timingSafeEqual(p, t) || ok;
  return ok;
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export const bearer = (header: string) => /^Bearer\s+(\S+)\s*$/iu.exec(header)?.[1] ?? null;

export interface Auth {
  /** Default deny: everything but /healthz needs an API token; /admin takes ADMIN_TOKEN. Throws 401/404. */
  authorize(ctx: Context, path: string): void;
  /** The API token check alone (the handout route, matched before any path parsing). */
  authorizeApi(ctx: Context): void;
  /**
   * Whether a token presented some other way (the proxy: in the upstream's key header) is an API
   * token; true when the API is open.
   */
  isApiToken(presented: string | null): boolean;
}

/**
 * Bearer-token checks. Tokens are compared as digests in constant time; an empty `apiTokens`
 * leaves the API open (config allows that on loopback only), no `adminToken` hides /admin.
 */
export function createAuth(apiTokens: readonly string[], adminToken: string | null | undefined): Auth {
  const tokenDigests = apiTokens.map(digest);
  const adminDigests = adminToken ? [digest(adminToken)] : [];
  const authorizeApi = (ctx: Context): void => {
    if (tokenDigests.length === 0) return;
    const presented = bearer(ctx.get('authorization'));
    if (presented === null || !tokenMatches(presented, tokenDigests)) throw unauthorized();
  };
  return {
    authorizeApi,
    isApiToken: (presented) =>
      tokenDigests.length === 0 || (presented !== null && tokenMatches(presented, tokenDigests)),
    authorize(ctx, path) {
      // Compared case-insensitively, so no spelling of a path (/API/…, /Metrics) can reach a
      // route without the check.
      const lower = path.toLowerCase();
      if (lower === '/admin' || lower.startsWith('/admin/')) {
        if (adminDigests.length === 0) throw notFound(path); // admin API off without ADMIN_TOKEN
        const presented = bearer(ctx.get('authorization'));
        if (presented === null || !tokenMatches(presented, adminDigests)) throw unauthorized();
      } else if (lower !== '/healthz') authorizeApi(ctx);
    },
  };
}
