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

/** Bodies up to this size are parsed as JSON; larger ones (images in base64) are scanned for the two fields read. */
const PARSE_BYTES = 64 * 1024;

/** What a create's body says that prices and pins it: `health` and `custom_id` (top-level fields). */
interface CreateFields {
  health: unknown;
  customId: unknown;
}

/**
 * The two fields of a create's JSON body, given in the pieces it arrived in. A small body is
 * parsed; a large one (megabytes of base64 images, whose parse cost a fifth of the proxy's CPU)
 * is searched for `"health"` and `"custom_id"` and only the value after each is read: base64
 * holds no quote, so the names cannot stand inside an image.
 */
function createFields(body: readonly Buffer[] | null): CreateFields {
  const size = body === null ? 0 : body.reduce((n, p) => n + p.length, 0);
  if (body === null || size === 0) return { health: undefined, customId: undefined };
  if (size <= PARSE_BYTES) {
    try {
      const v: unknown = JSON.parse(Buffer.concat(body).toString('utf8'));
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
        const o = v as Record<string, unknown>;
        return { health: o.health, customId: o.custom_id };
      }
    } catch {
      // not JSON: nothing to read
    }
    return { health: undefined, customId: undefined };
  }
  return { health: scalarAfter(body, '"health"'), customId: scalarAfter(body, '"custom_id"') };
}

/** How far past a field's name its value is read. */
const VALUE_BYTES = 96;

/** The JSON string or number after `"name":` in the pieces of `body`, or undefined. */
function scalarAfter(body: readonly Buffer[], quotedName: string): unknown {
  const found = indexIn(body, quotedName);
  if (found === null) return undefined;
  const after = bytesFrom(body, found[0], found[1] + quotedName.length, VALUE_BYTES).toString('latin1');
  const m = /^\s*:\s*(?:"([^"\\]{0,64})"|(-?\d{1,20}))/u.exec(after);
  if (!m) return undefined;
  return m[1] !== undefined ? m[1] : Number(m[2]);
}

/** Where `needle` first stands in the pieces: [piece, offset], found across a seam between pieces too. */
function indexIn(pieces: readonly Buffer[], needle: string): [number, number] | null {
  const overlap = needle.length - 1;
  for (let i = 0; i < pieces.length; i++) {
    const at = pieces[i]!.indexOf(needle);
    if (at >= 0) return [i, at];
    if (i + 1 < pieces.length) {
      const tail = pieces[i]!.subarray(Math.max(0, pieces[i]!.length - overlap));
      const seam = Buffer.concat([tail, bytesFrom(pieces, i + 1, 0, overlap)]).indexOf(needle);
      if (seam >= 0) return [i, pieces[i]!.length - tail.length + seam];
    }
  }
  return null;
}

/** Up to `n` bytes of the pieces from piece `i`, offset `at` (which may lie past that piece's end). */
function bytesFrom(pieces: readonly Buffer[], i: number, at: number, n: number): Buffer {
  const out: Buffer[] = [];
  let left = n;
  for (let j = i; j < pieces.length && left > 0; j++) {
    const piece = pieces[j]!;
    if (at >= piece.length) {
      at -= piece.length;
      continue;
    }
    const part = piece.subarray(at, at + left);
    out.push(part);
    left -= part.length;
    at = 0;
  }
  return Buffer.concat(out);
}

/**
 * The price of `method path?query` with `body` (in the pieces it arrived in) on `upstream`.
 * `path` is the path sent upstream (with the API's base, e.g. `/api/v3/identification`).
 */
export function priceOf(
  upstream: UpstreamConfig,
  method: string,
  path: string,
  query: string,
  body: readonly Buffer[] | null,
): Price {
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
    const fields = createFields(body);
    const healthAll = fields.health === 'all' || new URLSearchParams(query).get('health') === 'all';
    const credits = upstream.product === 'plant.id' && route === '/identification' && healthAll ? 2 : 1;
    const custom = fields.customId;
    const customId =
      typeof custom === 'number' && Number.isFinite(custom)
        ? String(custom)
        : typeof custom === 'string' && custom !== ''
          ? custom
          : null;
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
