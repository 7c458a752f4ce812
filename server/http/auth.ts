import { createHash, timingSafeEqual } from 'node:crypto';
import type { Context } from 'koa';
import type { AppsFile } from '../apps/file.js';
import { budgetIn, mayUsePool, type App } from '../apps/model.js';
import type { Spender } from '../pools/budgets.js';
import { HttpError, notFound, unauthorized } from './errors.js';

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

/**
 * Who is calling: a named app (apps/), an `API_TOKENS` token (an unnamed app with every pool,
 * both modes and stats), or anyone, when the API is open (no API token and no app, on loopback).
 */
export type Caller = { kind: 'open' } | { kind: 'token' } | { kind: 'app'; app: App };

// The same two callers every time: nothing made per request on the handout's hot path.
const OPEN: Caller = { kind: 'open' };
const TOKEN: Caller = { kind: 'token' };

/** The caller's app name for logs and metrics ('' for none). */
export const appName = (c: Caller | undefined): string => (c?.kind === 'app' ? c.app.name : '');

export interface Auth {
  /** The caller of a request's bearer token; throws 401 (with the reason for a disabled or expired app). */
  apiCaller(ctx: Context): Caller;
  /** The caller of the first valid one of tokens presented some other way (the proxy's key header). */
  callerOf(presented: ReadonlyArray<string | null>): Caller;
  /** `/admin`: the actor (an admin app's name, or `admin` for ADMIN_TOKEN); 404 without any admin, 401 else. */
  admin(ctx: Context): string;
}

/**
 * Bearer-token checks. API_TOKENS and ADMIN_TOKEN are compared as digests in constant time; an
 * app token (`kwa_…`) against its app's salted hash in the apps file (apps/file.ts), which a
 * running server re-reads within a second. No API token and no app leaves the API open (config
 * allows that on loopback only); no ADMIN_TOKEN and no admin app hides /admin.
 */
export function createAuth(
  apiTokens: readonly string[],
  adminToken: string | null | undefined,
  apps: AppsFile | null,
  clock: () => number,
): Auth {
  const tokenDigests = apiTokens.map(digest);
  const adminDigests = adminToken ? [digest(adminToken)] : [];
  const open = () => tokenDigests.length === 0 && (apps === null || apps.apps.length === 0);

  /** One token's caller; null when it is nobody's. */
  const callerFor = (presented: string): Caller | null => {
    if (apps !== null) {
      const who = apps.resolve(presented, clock());
      if (who.kind === 'app') return { kind: 'app', app: who.app };
      if (who.kind === 'refused') throw new HttpError(401, who.code, who.message, {}, { 'WWW-Authenticate': 'Bearer' });
    }
    return tokenDigests.length > 0 && tokenMatches(presented, tokenDigests) ? TOKEN : null;
  };

  /** The caller of one presented token (or none): 401 unless the API is open. */
  const callerOfOne = (presented: string | null): Caller => {
    const c = presented === null ? null : callerFor(presented);
    if (c) return c;
    if (open()) return OPEN;
    throw unauthorized();
  };

  const callerOf = (presented: ReadonlyArray<string | null>): Caller => {
    for (const p of presented) {
      const c = p === null ? null : callerFor(p);
      if (c) return c;
    }
    return callerOfOne(null);
  };

  return {
    callerOf,
    apiCaller: (ctx) => callerOfOne(bearer(ctx.get('authorization'))),
    admin(ctx) {
      const anyAdminApp = apps?.apps.some((a) => a.admin) ?? false;
      if (adminDigests.length === 0 && !anyAdminApp) throw notFound(ctx.path); // admin API off
      const presented = bearer(ctx.get('authorization'));
      if (presented === null) throw unauthorized();
      if (adminDigests.length > 0 && tokenMatches(presented, adminDigests)) return 'admin';
      const c = apps === null ? null : callerFor(presented);
      if (c?.kind === 'app' && c.app.admin) return c.app.name;
      throw unauthorized();
    },
  };
}

const forbidden = (code: string, message: string) => new HttpError(403, code, message);

/** A handout from `pool` for `caller`: what it is charged to, or a 403 saying why not. */
export function handoutSpender(caller: Caller, pool: string): Spender | undefined {
  if (caller.kind !== 'app') return undefined;
  const { app } = caller;
  if (app.mode === 'proxy')
    throw forbidden(
      'handout_not_allowed',
      `app ${app.name} may only use the proxy (/proxy/<pool>/…): it never sees a key`,
    );
  return poolSpender(app, pool);
}

/** A proxied request to `pool` for `caller`: what its creates are charged to, or a 403 saying why not. */
export function proxySpender(caller: Caller, pool: string): Spender | undefined {
  if (caller.kind !== 'app') return undefined;
  const { app } = caller;
  if (app.mode === 'handout')
    throw forbidden('proxy_not_allowed', `app ${app.name} may only take keys (GET /api/<pool>), not use the proxy`);
  return poolSpender(app, pool);
}

function poolSpender(app: App, pool: string): Spender {
  if (!mayUsePool(app, pool)) throw forbidden('forbidden_pool', `app ${app.name} may not use pool ${pool}`);
  return { app: app.name, budget: budgetIn(app, pool) };
}

/** Stats, history and metrics: for API tokens, the open API and apps made with `stats`. */
export function mayReadStats(caller: Caller): void {
  if (caller.kind === 'app' && !caller.app.stats)
    throw forbidden('stats_not_allowed', `app ${caller.app.name} may not read stats (made without "stats")`);
}

/** A report on a key of `pool`: the app's pools only. */
export function mayReport(caller: Caller, pool: string): void {
  if (caller.kind === 'app' && !mayUsePool(caller.app, pool))
    throw forbidden('forbidden_pool', `app ${caller.app.name} may not use pool ${pool}`);
}
