import type { Hold, KeyState } from './records.js';
import { CORRELATION_WINDOW_MS, DEFAULT_POOL_THROTTLE_MS } from './policy.js';
import { isCorrelated } from './rules.js';

/** What a key was before a 429 blocked it: put back if the 429 turns out to be the pool's, not the key's. */
type Prior = Pick<KeyState, 'block' | 'backoffLevel' | 'probe'>;

/**
 * A pool-wide throttle (the in-memory pool's; `pool.lua` keeps the same in its pool hash): when
 * many keys report 429 at once (rules.isCorrelated), the caller is throttled, not the keys, so
 * the pool holds every handout for a while and the keys' blocks are undone.
 */
export class PoolThrottle {
  /** In force until `hold.until` (a hold that ended is lifted by the next handout). */
  hold: Hold | null = null;
  private readonly recent = new Map<string, { at: number; retryAfterMs: number | null; prior: Prior }>();

  /** Whether the throttle is in force at `now`. */
  inForce(now: number): boolean {
    return this.hold !== null && now < this.hold.until;
  }

  /** Notes a key's 429 (before its block), with what to restore if the pool turns out throttled. */
  note429(keyId: string, at: number, retryAfterMs: number | null, prior: Prior): void {
    this.recent.set(keyId, {
      at,
      retryAfterMs,
      prior: { block: prior.block, backoffLevel: prior.backoffLevel, probe: prior.probe },
    });
  }

  /**
   * Throttles the pool if the recent 429s of keys it still has are correlated: the keys to put
   * back as they were, and how many reported; null when they are not.
   */
  engage(
    now: number,
    has: (keyId: string) => boolean,
    poolSize: number,
  ): { keys: number; until: number; restore: Array<[keyId: string, prior: Prior]> } | null {
    for (const [keyId, r] of this.recent)
      if (r.at <= now - CORRELATION_WINDOW_MS || !has(keyId)) this.recent.delete(keyId);
    const n = this.recent.size;
    if (!isCorrelated(n, poolSize)) return null;
    let shortest: number | null = null;
    const restore: Array<[string, Prior]> = [];
    for (const [keyId, r] of this.recent) {
      restore.push([keyId, r.prior]);
      if (r.retryAfterMs !== null) shortest = shortest === null ? r.retryAfterMs : Math.min(shortest, r.retryAfterMs);
    }
    const until = now + (shortest ?? DEFAULT_POOL_THROTTLE_MS);
    this.hold = { until, reason: `${n} of ${poolSize} keys reported 429 within ${CORRELATION_WINDOW_MS / 1000}s` };
    this.recent.clear();
    return { keys: n, until, restore };
  }

  /** Lifts it (and forgets the 429s counted towards one); whether it was in force. */
  clear(now: number): boolean {
    const was = this.inForce(now);
    this.hold = null;
    this.recent.clear();
    return was;
  }
}
