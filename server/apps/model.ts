/**
 * Apps: who calls Keywarden, each with a token of its own, the pools it may use, how (proxy,
 * handout or both), whether it may read stats, its budgets and rate, and whether it is an admin.
 * Pure: what an app is, how its tokens are made and checked, and how a request of it is judged.
 * The file they live in is apps/file.ts; the budgets are enforced in the pools (pools/budgets.ts).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { BUDGET_WINDOWS, type Budget } from '../pools/budgets.js';

export const APP_NAME = /^[a-z0-9_-]{1,64}$/u;
export type AppMode = 'proxy' | 'handout' | 'both';
export const APP_MODES: readonly AppMode[] = ['proxy', 'handout', 'both'];

/** A token as stored: never the token, only a salted hash; `until` ends a rotated-out token's grace. */
export interface StoredToken {
  id: string;
  salt: string;
  hash: string;
  until: number | null;
}

export interface App {
  name: string;
  pools: string[] | '*';
  mode: AppMode;
  stats: boolean;
  /** Budgets per pool name, or `*` for every pool without one of its own. */
  budget: Record<string, Budget>;
  ratePerMinute: number | null;
  expiresAt: number | null;
  disabled: boolean;
  /** Its token opens /admin too; its name is the actor in the audit log. */
  admin: boolean;
  createdAt: number;
  tokens: StoredToken[];
}

/** An app as the API and CLI show it: no token material at all. */
export type AppView = Omit<App, 'tokens' | 'expiresAt' | 'createdAt'> & {
  expiresAt: string | null;
  createdAt: string;
  /** When a rotated-out token stops working (null: none in its grace period). */
  graceUntil: string | null;
};

const budgetSchema = z
  .object(
    Object.fromEntries(
      BUDGET_WINDOWS.map((w) => [
        w,
        z.number().int('must be a whole number').min(0, 'must be 0 or more').max(1e12, 'is too large').optional(),
      ]),
    ) as Record<'day' | 'week' | 'month', z.ZodOptional<z.ZodNumber>>,
  )
  .strict();
const poolRef = z.string().regex(/^(\*|[a-z0-9_-]{1,64})$/u, 'must be a pool name or "*"');
const when = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const ms = typeof v === 'number' ? v : Date.parse(v);
  if (!Number.isFinite(ms) || ms < 0 || ms > 8.64e15) {
    ctx.addIssue({ code: 'custom', message: 'must be an ISO date-time (2027-01-31T00:00:00Z)' });
    return z.NEVER;
  }
  return ms;
});

/** The settings an operator gives an app; `app add` fills in the defaults, a PATCH changes only what it names. */
const settings = {
  pools: z.union([z.literal('*'), z.array(poolRef).min(1, 'name at least one pool, or "*"')]),
  mode: z.enum(APP_MODES, `must be one of ${APP_MODES.join(', ')}`),
  stats: z.boolean(),
  budget: z.record(poolRef, budgetSchema),
  ratePerMinute: z.number().int().min(1, 'must be 1 or more').max(1e9).nullable(),
  expiresAt: when.nullable(),
  disabled: z.boolean(),
  admin: z.boolean(),
};

/** What POST /admin/apps and `app add` take: a name, and settings at their defaults where not given. */
export const appInput = z
  .object({
    name: z.string().regex(APP_NAME, 'must be 1-64 of a-z, 0-9, _ and -'),
    pools: settings.pools.default('*'),
    mode: settings.mode.default('both'),
    stats: settings.stats.default(false),
    budget: settings.budget.default({}),
    ratePerMinute: settings.ratePerMinute.default(null),
    expiresAt: settings.expiresAt.default(null),
    disabled: settings.disabled.default(false),
    admin: settings.admin.default(false),
  })
  .strict();
export type AppInput = z.output<typeof appInput>;
/** What PATCH /admin/apps/<name> and `app update` take: any of the settings, the others left as they are. */
export const appPatch = z.object(settings).partial().strict();
export type AppPatch = z.output<typeof appPatch>;

const storedToken = z.object({
  id: z.string().regex(/^[0-9a-f]{8,32}$/u),
  salt: z.string().regex(/^[0-9a-f]{32}$/u),
  hash: z.string().regex(/^[0-9a-f]{64}$/u),
  until: z.number().nullable(),
});
const storedApp = z
  .object({
    name: z.string().regex(APP_NAME, 'must be 1-64 of a-z, 0-9, _ and -'),
    pools: z.union([z.literal('*'), z.array(poolRef)]),
    mode: z.enum(APP_MODES),
    stats: z.boolean(),
    budget: z.record(poolRef, budgetSchema),
    ratePerMinute: z.number().int().positive().nullable(),
    expiresAt: z.number().nullable(),
    disabled: z.boolean(),
    admin: z.boolean(),
    createdAt: z.number(),
    tokens: z.array(storedToken).min(1),
  })
  .strict();
/** The apps file: `{"version": 1, "apps": [...]}`. */
export const appsFileSchema = z.object({ version: z.literal(1), apps: z.array(storedApp) }).strict();

/** A token's text: `kwa_<id>_<secret>`; the id finds its app without trying every hash. */
const TOKEN = /^kwa_([0-9a-f]{8,32})_([A-Za-z0-9_-]{43})$/u;

const hashOf = (salt: string, secret: string) =>
  createHash('sha256').update(salt, 'utf8').update(secret, 'utf8').digest('hex');

/** A new token, and what is stored of it. */
export function makeToken(until: number | null = null): { token: string; stored: StoredToken } {
  const id = randomBytes(6).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const salt = randomBytes(16).toString('hex');
  return { token: `kwa_${id}_${secret}`, stored: { id, salt, hash: hashOf(salt, secret), until } };
}

/** The id of an app token, or null for anything else (an API_TOKENS token, say). */
export function tokenId(presented: string): string | null {
  return TOKEN.exec(presented)?.[1] ?? null;
}

/** Whether `presented` is `stored`'s token, in constant time. */
export function tokenMatches(presented: string, stored: StoredToken): boolean {
  const m = TOKEN.exec(presented);
  if (!m || m[1] !== stored.id) return false;
  return timingSafeEqual(Buffer.from(hashOf(stored.salt, m[2]!), 'hex'), Buffer.from(stored.hash, 'hex'));
}

/** An app's budget in `pool`: its own, else the `*` one, else none. */
export function budgetIn(app: App, pool: string): Budget | null {
  return app.budget[pool] ?? app.budget['*'] ?? null;
}

export function mayUsePool(app: App, pool: string): boolean {
  return app.pools === '*' || app.pools.includes(pool);
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function viewOf(app: App, now: number): AppView {
  const { tokens, expiresAt, createdAt, ...rest } = app;
  const grace = tokens.filter((t) => t.until !== null && t.until > now).map((t) => t.until!);
  return {
    ...rest,
    expiresAt: iso(expiresAt),
    createdAt: iso(createdAt)!,
    graceUntil: grace.length ? iso(Math.max(...grace)) : null,
  };
}
