import { resolve } from 'node:path';
import { z } from 'zod';
import { intVar, parseEnv } from '../shared/env.js';
import { cipherFromEnv, type KeyCipher } from '../server/keys/cipher.js';
import { POOL_NAME } from '../server/config.js';
import type { ProcessProbe } from '../server/state/lock.js';
import type { UsageFetcher } from '../server/upstream/usage-client.js';
import { HttpError } from '../server/errors.js';
import { CliError } from './errors.js';

/** Where the CLI works: a running server's admin API, or the key files and state file themselves. */

const envSchema = z.object({
  HOST: z.string().default('127.0.0.1'),
  PORT: intVar(5000, 0, 65535),
  KEYWARDEN_URL: z.url().optional(),
  ADMIN_TOKEN: z.string().optional(),
  KEYS_DIR: z.string().default('./keys'),
  STATE_FILE: z.string().default('./api_state.json'),
  APPS_FILE: z.string().default('./apps.json'),
  AUDIT_FILE: z.string().default('./audit.log'),
  STATE_BACKEND: z.enum(['file', 'redis']).default('file'),
  UPSTREAM_TIMEOUT_MS: intVar(10_000, 100, 600_000),
});

export interface Target {
  url: string;
  adminToken: string | null;
  keysDir: string;
  stateFile: string;
  /** APPS_FILE and AUDIT_FILE, as the server reads them. */
  appsFile: string;
  auditFile: string;
  /** With Redis, state is only reachable through a running server's admin API. */
  redis: boolean;
  /** KEYS_SECRET: encrypted key-file lines, and keys added to the files, go through it. */
  cipher: KeyCipher | null;
  upstreamTimeoutMs: number;
}

export type Mode = { kind: 'api' } | { kind: 'files'; serverRunning: boolean };

export function targetOf(env: Record<string, string | undefined>): Target {
  const e = parseEnv(envSchema, env);
  const host = e.HOST === '0.0.0.0' || e.HOST === '::' ? '127.0.0.1' : e.HOST;
  return {
    url: (e.KEYWARDEN_URL ?? `http://${host.includes(':') ? `[${host}]` : host}:${e.PORT}`).replace(/\/+$/u, ''),
    adminToken: e.ADMIN_TOKEN ?? null,
    keysDir: resolve(e.KEYS_DIR),
    stateFile: resolve(e.STATE_FILE),
    appsFile: resolve(e.APPS_FILE),
    auditFile: resolve(e.AUDIT_FILE),
    redis: e.STATE_BACKEND === 'redis',
    cipher: cipherFromEnv(env),
    upstreamTimeoutMs: e.UPSTREAM_TIMEOUT_MS,
  };
}

export async function detectMode(t: Target, doFetch: typeof fetch): Promise<Mode> {
  let running: boolean;
  try {
    const res = await doFetch(`${t.url}/healthz`, { signal: AbortSignal.timeout(1500) });
    running = res.ok;
  } catch {
    running = false;
  }
  if (running && t.adminToken) return { kind: 'api' };
  return { kind: 'files', serverRunning: running };
}

/** A call of the running server's admin API; its JSON answer as the caller says it is shaped. */
export async function api<T>(
  t: Target,
  doFetch: typeof fetch,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  let res: Response;
  try {
    res = await doFetch(`${t.url}/admin${path}`, {
      method,
      headers: {
        authorization: `Bearer ${t.adminToken}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (err) {
    throw new CliError(`the server at ${t.url} stopped answering (${(err as Error).message})`);
  }
  const text = await res.text();
  const json = (text ? JSON.parse(text) : null) as (T & { error?: string; message?: string }) | null;
  if (res.status === 401) throw new CliError(`ADMIN_TOKEN was refused by the server at ${t.url}`);
  if (res.status === 404 && json?.error === 'not_found')
    throw new CliError(`the server at ${t.url} has no admin API: start it with ADMIN_TOKEN set`);
  if (res.status >= 400) {
    // The server's operation failed: the same error the operation throws offline.
    const { error, message, ...extra } = json ?? {};
    throw new HttpError(res.status, error ?? 'http_error', message ?? `the server answered ${res.status}`, extra);
  }
  return json as T;
}

export interface CliDeps {
  env: Record<string, string | undefined>;
  /** This process, to take the state file's lock while editing it offline. */
  probe: ProcessProbe;
  /** Keys typed or piped in, for `add`. */
  readKeys: () => Promise<string[]>;
  out: (line: string) => void;
  fetch?: typeof fetch;
  /** Asks an upstream about a key with no server running (default: usage_info over undici). */
  fetchUsage?: UsageFetcher;
}

export function poolArg(pool: string | undefined, names: string[] | null): string {
  if (pool === undefined) throw new CliError(`missing <pool>; run "npm run keys -- help" for usage`, 2);
  if (!POOL_NAME.test(pool) || (names !== null && !names.includes(pool)))
    throw new CliError(`unknown pool ${JSON.stringify(pool)}${names ? ` (pools: ${names.join(', ')})` : ''}`);
  return pool;
}
