import type { RedisClient } from './client.js';
import { StateUnavailableError } from '../pools/contract.js';
import type { PinLimits, SavedPin } from '../pools/pins.js';

/**
 * A pool's pins (pools/pins.ts) in Redis, shared by every instance: `P.."pins"` hash ref →
 * "keyId:pinnedAt", `P.."pinat"` sorted set ref by pinnedAt (the oldest are evicted first and
 * expired ones are swept). A pin is not a rule: no limit depends on it, so plain commands do.
 */
export class RedisPins {
  private readonly hash: string;
  private readonly byAge: string;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
    private readonly limits: PinLimits,
  ) {
    this.hash = `${prefix}pins`;
    this.byAge = `${prefix}pinat`;
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new StateUnavailableError(err);
    }
  }

  async get(ref: string, now: number): Promise<string | null> {
    const value = await this.call(() => this.redis.hget(this.hash, ref));
    if (value === null) return null;
    const [keyId, at] = value.split(':');
    if (now - Number(at) < this.limits.ttlMs) return keyId!;
    await this.call(() => this.redis.multi().hdel(this.hash, ref).zrem(this.byAge, ref).exec());
    return null;
  }

  /** Pins `refs` to `keyId`; returns how many live pins were evicted to stay within the limit. */
  async set(refs: readonly string[], keyId: string, now: number): Promise<number> {
    if (refs.length === 0) return 0;
    const multi = this.redis.multi();
    for (const ref of refs) multi.hset(this.hash, ref, `${keyId}:${now}`).zadd(this.byAge, now, ref);
    multi.zremrangebyscore(this.byAge, '-inf', now - this.limits.ttlMs);
    multi.zcard(this.byAge);
    const replies = await this.call(() => multi.exec());
    const size = Number(replies?.[replies.length - 1]?.[1] ?? 0);
    // Expired pins leave the index above; their hash fields go when read (get) or here, a batch at a time.
    let evicted = 0;
    if (size > this.limits.max) {
      const oldest = await this.call(() => this.redis.zpopmin(this.byAge, size - this.limits.max));
      const refsOut = oldest.filter((_, i) => i % 2 === 0);
      if (refsOut.length > 0) await this.call(() => this.redis.hdel(this.hash, ...refsOut));
      evicted = refsOut.length;
    }
    return evicted;
  }

  count(): Promise<number> {
    return this.call(() => this.redis.zcard(this.byAge));
  }

  /** Drops every pin to one of `keyIds` (their keys left the pool). */
  async dropKeys(keyIds: ReadonlySet<string>): Promise<void> {
    const out: string[] = [];
    let cursor = '0';
    do {
      const [next, flat] = await this.call(() => this.redis.hscan(this.hash, cursor, 'COUNT', 1000));
      cursor = next;
      for (let i = 0; i < flat.length; i += 2) if (keyIds.has(flat[i + 1]!.split(':')[0]!)) out.push(flat[i]!);
    } while (cursor !== '0');
    for (let i = 0; i < out.length; i += 1000) {
      const batch = out.slice(i, i + 1000);
      await this.call(() =>
        this.redis
          .multi()
          .hdel(this.hash, ...batch)
          .zrem(this.byAge, ...batch)
          .exec(),
      );
    }
  }

  /** Every pin, for an export. */
  async all(): Promise<Record<string, SavedPin>> {
    const flat = await this.call(() => this.redis.hgetall(this.hash));
    const out: Record<string, SavedPin> = {};
    for (const [ref, value] of Object.entries(flat)) {
      const [keyId, at] = value.split(':');
      out[ref] = [keyId!, Number(at)];
    }
    return out;
  }

  /** Puts saved pins (an import, a state file's) in the place of what Redis holds. */
  async replace(saved: Readonly<Record<string, SavedPin | null>>, now: number): Promise<void> {
    const live = Object.entries(saved).filter(
      (e): e is [string, SavedPin] => e[1] !== null && now - e[1][1] < this.limits.ttlMs,
    );
    live.sort((a, b) => a[1][1] - b[1][1]);
    const kept = live.slice(Math.max(0, live.length - this.limits.max));
    await this.call(() => this.redis.del(this.hash, this.byAge));
    for (let i = 0; i < kept.length; i += 1000) {
      const multi = this.redis.multi();
      for (const [ref, [keyId, at]] of kept.slice(i, i + 1000))
        multi.hset(this.hash, ref, `${keyId}:${at}`).zadd(this.byAge, at, ref);
      await this.call(() => multi.exec());
    }
  }
}
