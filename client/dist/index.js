/**
 * Keywarden client for Node apps: get a key, report what the upstream answered, or let
 * `withKey` do both. Uses the global fetch (Node >= 18); no other dependency.
 *
 * ```ts
 * const kw = createKeywardenClient({ baseUrl: 'http://127.0.0.1:5000', token: process.env.KEYWARDEN_TOKEN });
 * const res = await kw.withKey('plantid', (key) => fetch(url, { headers: { 'Api-Key': key } }));
 * ```
 */
/**
 * A failure answer from Keywarden (no key free, unknown pool, bad token …), or `unreachable`
 * (status 0) when no answer came at all.
 */
export class KeywardenError extends Error {
    status;
    code;
    retryAfterSec;
    constructor(status, code, message, 
    /** Seconds to wait before asking again, when the server said. */
    retryAfterSec = null) {
        super(message);
        this.status = status;
        this.code = code;
        this.retryAfterSec = retryAfterSec;
        this.name = 'KeywardenError';
    }
}
/** Parses a Retry-After header (seconds or HTTP date) into seconds. */
export function parseRetryAfter(value, now) {
    if (!value)
        return undefined;
    if (/^\d+(\.\d+)?$/u.test(value.trim()))
        return Number(value.trim());
    const at = Date.parse(value);
    return Number.isFinite(at) ? Math.max(0, Math.ceil((at - now) / 1000)) : undefined;
}
function statusOf(value) {
    if (typeof value !== 'object' || value === null)
        return null;
    const v = value;
    for (const s of [v.status, v.statusCode, v.response?.status])
        if (typeof s === 'number' && s >= 100 && s < 600)
            return s;
    return null;
}
function retryAfterOf(value, now) {
    if (typeof value !== 'object' || value === null)
        return undefined;
    const headers = value.headers ??
        value.response?.headers;
    if (!headers)
        return undefined;
    const get = headers.get;
    const raw = typeof get === 'function'
        ? get.call(headers, 'retry-after')
        : headers['retry-after'];
    return parseRetryAfter(raw, now);
}
export function createKeywardenClient(options) {
    const base = options.baseUrl.replace(/\/+$/u, '');
    const doFetch = options.fetch ?? fetch;
    const clock = options.clock ?? Date.now;
    const timeoutMs = options.timeoutMs ?? 5000;
    const cacheMs = options.cacheMs ?? 0;
    const leaseSize = Math.max(1, options.leaseSize ?? 10);
    const poolOf = new Map();
    const cache = new Map();
    async function call(path, init = {}) {
        const headers = new Headers(init.headers);
        if (options.token)
            headers.set('authorization', `Bearer ${options.token}`);
        try {
            return await doFetch(`${base}${path}`, { ...init, headers, signal: AbortSignal.timeout(timeoutMs) });
        }
        catch (err) {
            // fetch says only "fetch failed" (a refused connection, DNS, a timeout): name the server and the cause.
            const cause = err.cause;
            const why = cause?.code ?? cause?.message ?? err.message;
            throw new KeywardenError(0, 'unreachable', `Keywarden at ${base} cannot be reached (${why})`);
        }
    }
    async function fail(res) {
        let body = {};
        try {
            body = (await res.json());
        }
        catch {
            // not JSON
        }
        throw new KeywardenError(res.status, body.error ?? `http_${res.status}`, body.message ?? `Keywarden answered ${res.status}`, body.retryAfter ?? null);
    }
    async function lease(pool, count) {
        const res = await call(`/api/${encodeURIComponent(pool)}${count > 1 ? `?count=${count}` : ''}`);
        if (res.status !== 200)
            return fail(res);
        const body = (await res.json());
        poolOf.set(body.keyId, pool);
        return { ...body, granted: body.granted ?? 1 };
    }
    /** A fresh key from `pool`. Throws KeywardenError when none is free (with retryAfterSec). */
    async function getKey(pool) {
        const { granted: _g, ...handout } = await lease(pool, 1);
        return handout;
    }
    /** Tells Keywarden what the upstream answered for a key's request. */
    async function report(keyId, result, opts = {}) {
        const pool = opts.pool ?? poolOf.get(keyId);
        if (!pool)
            throw new KeywardenError(0, 'unknown_pool', `no pool known for key ${keyId}; pass { pool }`);
        const body = {
            keyId,
            ...(typeof result === 'string' ? { outcome: result } : { status: result.status }),
            ...(opts.retryAfter !== undefined ? { retryAfter: opts.retryAfter } : {}),
        };
        const res = await call(`/api/${encodeURIComponent(pool)}/report`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(body),
        });
        if (res.status !== 204)
            await fail(res);
        const bad = typeof result === 'string'
            ? result !== 'ok'
            : result.status === 401 ||
                result.status === 403 ||
                result.status === 402 ||
                result.status === 429 ||
                result.status >= 500;
        if (bad)
            for (const [p, c] of cache)
                if (c.handout.keyId === keyId)
                    cache.delete(p);
    }
    async function keyFor(pool) {
        if (cacheMs <= 0)
            return getKey(pool);
        const now = clock();
        const hit = cache.get(pool);
        if (hit && hit.usesLeft > 0 && now < hit.expiresAt) {
            hit.usesLeft--;
            return hit.handout;
        }
        const { granted, ...handout } = await lease(pool, leaseSize);
        cache.set(pool, { handout, usesLeft: granted - 1, expiresAt: now + cacheMs });
        return handout;
    }
    /**
     * Runs `fn(key)` and reports the outcome by itself: from the returned value's HTTP status
     * (a fetch Response, or anything with `status`/`statusCode`, with Retry-After honoured), or,
     * when `fn` throws, from the error's status if it carries one (e.g. an axios error), else as
     * `error`. Returns what `fn` returned; rethrows what it threw. A failed report never hides
     * `fn`'s own result.
     */
    async function withKey(pool, fn) {
        const handout = await keyFor(pool);
        let result;
        try {
            result = await fn(handout.key, handout);
        }
        catch (err) {
            const status = statusOf(err);
            await report(handout.keyId, status === null ? 'error' : { status }, {
                pool,
                retryAfter: retryAfterOf(err, clock()),
            }).catch(() => { });
            throw err;
        }
        const status = statusOf(result);
        await report(handout.keyId, status === null ? 'ok' : { status }, {
            pool,
            retryAfter: status === 429 ? retryAfterOf(result, clock()) : undefined,
        }).catch(() => { });
        return result;
    }
    return { getKey, report, withKey };
}
/**
 * The client as a class, for `import { Keywarden } from 'keywarden/client'`:
 * `new Keywarden({ baseUrl, token })` has the same methods as `createKeywardenClient`.
 */
export class Keywarden {
    getKey;
    report;
    withKey;
    constructor(options) {
        const client = createKeywardenClient(options);
        this.getKey = client.getKey;
        this.report = client.report;
        this.withKey = client.withKey;
    }
}
