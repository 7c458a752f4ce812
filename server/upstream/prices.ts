import type { UpstreamConfig } from './config.js';

/**
 * What a proxied request costs, read off its method, path and body before it is sent. Pure.
 *
 * Kindwise charges credits for creating an identification or a health assessment (1; a plant.id
 * identification that also asks for `"health": "all"` 2) and nothing for what names an existing
 * identification (retrieve, delete, feedback, conversation), which only the key that made it can
 * reach. Other upstreams: every request is one use, as a handout.
 */
export type Price =
  /** A create: spends `credits`; its answer's access_token (and the request's custom_id) pin the key. */
  | { kind: 'create'; credits: number; customId: string | null }
  /** Names identification `ref` (an access_token or a custom_id): free, and only its key knows it. */
  | { kind: 'pinned'; ref: string }
  /** Free, on any key (usage_info, the knowledge base's name_search). */
  | { kind: 'free' }
  /** Anything else: one use, as a handout. */
  | { kind: 'use'; credits: 1 };

const ONE_USE: Price = { kind: 'use', credits: 1 };
const FREE: Price = { kind: 'free' };

/** `/identification/<ref>` and everything under it. */
const NAMES_IDENTIFICATION = /^\/identification\/([^/]+)(?:\/.*)?$/su;
/** The knowledge base's search: `/kb/<type>/name_search`. */
const NAME_SEARCH = /^\/kb\/[^/]+\/name_search\/?$/su;

/** The create's JSON body, when it is one (null: not JSON, or not an object). */
function jsonObject(body: Buffer | null): Record<string, unknown> | null {
  if (body === null || body.length === 0) return null;
  try {
    const v: unknown = JSON.parse(body.toString('utf8'));
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/**
 * The price of `method path?query` with `body` on `upstream`. `path` is the path sent upstream
 * (with the API's base, e.g. `/api/v3/identification`).
 */
export function priceOf(upstream: UpstreamConfig, method: string, path: string, query: string, body: Buffer | null): Price {
  if (upstream.type !== 'kindwise') return ONE_USE;
  const base = upstream.apiBase;
  if (!path.startsWith(`${base}/`)) return ONE_USE;
  const route = path.slice(base.length).replace(/\/+$/u, '') || '/';
  const named = NAMES_IDENTIFICATION.exec(route);
  if (named) {
    const ref = safeDecode(named[1]!);
    return ref === null ? ONE_USE : { kind: 'pinned', ref };
  }
  if (method === 'GET' && (route === '/usage_info' || NAME_SEARCH.test(route))) return FREE;
  if (method === 'POST' && (route === '/identification' || route === '/health_assessment')) {
    const json = jsonObject(body);
    const healthAll = json?.health === 'all' || new URLSearchParams(query).get('health') === 'all';
    const credits = upstream.product === 'plant.id' && route === '/identification' && healthAll ? 2 : 1;
    const custom = json?.custom_id;
    const customId = typeof custom === 'number' && Number.isFinite(custom) ? String(custom) : typeof custom === 'string' && custom !== '' ? custom : null;
    return { kind: 'create', credits, customId };
  }
  return ONE_USE;
}

function safeDecode(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

/** The longest piece of a create's answer read for its access_token (Kindwise puts it first). */
export const ACCESS_TOKEN_SCAN_BYTES = 64 * 1024;

/** The `access_token` of a create's answer (the start of its JSON body), or null. */
export function accessTokenIn(head: string): string | null {
  const m = /"access_token"\s*:\s*"([^"\\]{1,200})"/u.exec(head);
  return m ? m[1]! : null;
}
