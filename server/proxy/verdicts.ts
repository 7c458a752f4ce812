import type { Logger } from '../../shared/logger.js';
import type { PoolKey, PoolRegistry } from '../pools/registry.js';
import type { AttemptVerdict } from '../upstream/proxy-outcome.js';
import type { RefusalJudge } from '../upstream/refusals.js';

/**
 * What an attempt's answer means for its key, recorded in the pool; never fails the request (a
 * failure to record is logged).
 */
export async function recordVerdict(
  deps: { registry: PoolRegistry; refusals: RefusalJudge; logger: Logger },
  pool: string,
  key: PoolKey,
  v: AttemptVerdict,
  /** How the request's log lines name its app (" for app mobile", or nothing). */
  by = '',
): Promise<void> {
  const { registry, logger } = deps;

  const keyId = key.keyId;
  try {
    switch (v.outcome) {
      case 'ok':
        await registry.report(pool, { keyId, outcome: 'ok' });
        break;
      case 'invalid':
        // Not a verdict by itself (the caller chose the path): the judge asks, or holds the key a while.
        void deps.refusals.refused(pool, key);
        break;
      case 'exhausted':
        await registry.recordUpstream(pool, {
          reached: true,
          keyId,
          finding: { status: 'exhausted', reason: v.reason, window: v.window },
          credits: null,
          viaProxy: true,
        });
        break;
      case 'rate_limited':
        await registry.report(pool, {
          keyId,
          outcome: 'rate_limited',
          ...(v.retryAfterSec === null ? {} : { retryAfterSec: v.retryAfterSec }),
        });
        break;
      case 'error':
        await registry.report(pool, { keyId, outcome: 'error' });
        break;
    }
  } catch (err) {
    logger.warn(`proxy ${pool}${by}: recording the outcome for key ${keyId} failed: ${(err as Error).message}`, {
      pool,
      keyId,
    });
  }
}
