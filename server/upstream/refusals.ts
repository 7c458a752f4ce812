import type { Logger } from '../../shared/logger.js';
import type { Clock, PoolKey, PoolRegistry } from '../pools/registry.js';
import type { UsageChecker } from './checker.js';

/** A key refused without a way to ask about it is held out this long, doubling on repeats up to MAX. */
export const REFUSAL_HOLD_BASE_SEC = 60;
export const REFUSAL_HOLD_MAX_SEC = 3600;
/** A refusal this long after the last one starts the ladder over. */
const LADDER_RESET_MS = 2 * REFUSAL_HOLD_MAX_SEC * 1000;

/**
 * What a proxied 401 or 403 does to its key. The caller chose the path, so the answer alone proves
 * nothing (a path that answers 401 for every key would take them all out): on a pool whose
 * upstream tells a key's state (Kindwise usage_info) the key is asked about at once, one check
 * at a time per key, and its status follows that answer; elsewhere it is held out for a backoff
 * (60 s, doubling on repeats, at most an hour), never disabled.
 */
export class RefusalJudge {
  private readonly checking = new Map<string, Promise<void>>();
  private readonly ladder = new Map<string, { level: number; at: number }>();

  constructor(private readonly deps: { registry: PoolRegistry; checker: UsageChecker; logger: Logger; clock: Clock }) {}

  /** Acts on a refusal of `key` in `pool`; resolves when what it does is recorded (tests wait on it). */
  refused(pool: string, key: PoolKey): Promise<void> {
    if (this.deps.checker.has(pool)) return this.check(pool, key);
    // Callers do not wait for this: a failure (the state backend down) is logged, never thrown.
    return this.hold(pool, key.keyId).catch((err: Error) => {
      this.deps.logger.warn(`proxy ${pool}: holding key ${key.keyId} after a refusal failed: ${err.message}`, {
        pool,
        keyId: key.keyId,
      });
    });
  }

  private check(pool: string, key: PoolKey): Promise<void> {
    const id = `${pool}/${key.keyId}`;
    const running = this.checking.get(id);
    if (running) return running;
    const run = (async () => {
      try {
        const check = await this.deps.checker.checkKey(pool, key.key, key.keyId);
        // Not reached: the upstream could not say; the key stays as it is.
        if (check?.reached) await this.deps.registry.recordUpstream(pool, { ...check, viaProxy: true });
      } catch (err) {
        this.deps.logger.warn(
          `proxy ${pool}: checking key ${key.keyId} after a refusal failed: ${(err as Error).message}`,
          { pool, keyId: key.keyId },
        );
      } finally {
        this.checking.delete(id);
      }
    })();
    this.checking.set(id, run);
    return run;
  }

  private async hold(pool: string, keyId: string): Promise<void> {
    const now = this.deps.clock();
    const id = `${pool}/${keyId}`;
    const last = this.ladder.get(id);
    const level = last && now - last.at < LADDER_RESET_MS ? last.level + 1 : 0;
    this.ladder.set(id, { level, at: now });
    if (this.ladder.size > 100_000) this.ladder.delete(this.ladder.keys().next().value!);
    const retryAfterSec = Math.min(REFUSAL_HOLD_BASE_SEC * 2 ** Math.min(level, 20), REFUSAL_HOLD_MAX_SEC);
    await this.deps.registry.report(pool, { keyId, outcome: 'rate_limited', retryAfterSec });
  }
}
