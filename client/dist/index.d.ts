/**
 * Keywarden client for Node apps: get a key, report what the upstream answered, or let
 * `withKey` do both. Uses the global fetch (Node >= 18); no other dependency.
 *
 * ```ts
 * const kw = createKeywardenClient({ baseUrl: 'http://127.0.0.1:5000', token: process.env.KEYWARDEN_TOKEN });
 * const res = await kw.withKey('plantid', (key) => fetch(url, { headers: { 'Api-Key': key } }));
 * ```
 */
export type Outcome = 'ok' | 'rate_limited' | 'exhausted' | 'invalid' | 'error';
export interface KeyHandout {
    pool: string;
    key: string;
    keyId: string;
    remaining: number | null;
}
export interface KeywardenClientOptions {
    /** e.g. `http://127.0.0.1:5000` */
    baseUrl: string;
    /** One of the server's API_TOKENS, if it has any. */
    token?: string;
    /** Per-request timeout; default 5000 ms. */
    timeoutMs?: number;
    /**
     * Reuse one key for up to this many ms in `withKey` (default 0: a fresh handout per call).
     * The client then leases `leaseSize` uses at once (`GET /api/<pool>?count=N`), so the server
     * counts every use against the limits before it happens. Trade-off: uses leased but not spent
     * before the cache expires still count, and a key reused for a few hundred ms is not rotated
     * within that time. A bad report drops the cached key at once.
     */
    cacheMs?: number;
    /** Uses leased per handout when caching; default 10. */
    leaseSize?: number;
    fetch?: typeof fetch;
    clock?: () => number;
}
/**
 * A failure answer from Keywarden (no key free, unknown pool, bad token …), or `unreachable`
 * (status 0) when no answer came at all.
 */
export declare class KeywardenError extends Error {
    readonly status: number;
    readonly code: string;
    /** Seconds to wait before asking again, when the server said. */
    readonly retryAfterSec: number | null;
    constructor(status: number, code: string, message: string, 
    /** Seconds to wait before asking again, when the server said. */
    retryAfterSec?: number | null);
}
export interface ReportOptions {
    /** The pool; needed only for a keyId this client did not hand out. */
    pool?: string;
    /** Seconds from the upstream's Retry-After. */
    retryAfter?: number;
}
/** What an upstream answered: a status (classified by the server) or an outcome. */
export type UpstreamResult = Outcome | {
    status: number;
};
/** Parses a Retry-After header (seconds or HTTP date) into seconds. */
export declare function parseRetryAfter(value: string | null | undefined, now: number): number | undefined;
export declare function createKeywardenClient(options: KeywardenClientOptions): {
    getKey: (pool: string) => Promise<KeyHandout>;
    report: (keyId: string, result: UpstreamResult, opts?: ReportOptions) => Promise<void>;
    withKey: <T>(pool: string, fn: (key: string, handout: KeyHandout) => Promise<T> | T) => Promise<T>;
};
export type KeywardenClient = ReturnType<typeof createKeywardenClient>;
/**
 * The client as a class, for `import { Keywarden } from 'keywarden/client'`:
 * `new Keywarden({ baseUrl, token })` has the same methods as `createKeywardenClient`.
 */
export declare class Keywarden {
    readonly getKey: KeywardenClient['getKey'];
    readonly report: KeywardenClient['report'];
    readonly withKey: KeywardenClient['withKey'];
    constructor(options: KeywardenClientOptions);
}
