import { Semaphore } from 'async-mutex';
import { keyIdOf, maskKey } from '../../shared/keys.js';
import type { CreditWindows } from '../../shared/stats.js';
import type { UpstreamCheck } from '../pools/contract.js';

/** One key's check: the key's names and what the upstream said. */
export interface KeyCheck {
  keyId: string;
  masked: string;
  check: UpstreamCheck;
}

/** What the check-before-add and `keys check` need of the sync (upstream/sync.ts UpstreamSync). */
export interface KeyChecker {
  /** Whether the pool has an upstream to ask. */
  has(pool: string): boolean;
  /** Asks about a key, recording nothing; null when the pool has no upstream. */
  checkKey(pool: string, key: string, keyId: string): Promise<UpstreamCheck | null>;
  /** Checks every key of the pool now and records the answers in it. */
  checkPool(pool: string): Promise<KeyCheck[]>;
}

/** A check as an operator reads it (the admin API's check and add, the CLI's table). */
export interface CheckRow {
  keyId: string;
  masked: string;
  verdict: 'ok' | 'invalid' | 'exhausted' | 'unreachable';
  /** The upstream's sentence, or why it could not be asked; null when the key is fine. */
  reason: string | null;
  remaining: CreditWindows | null;
}

export function checkRow(keyId: string, masked: string, check: UpstreamCheck): CheckRow {
  if (!check.reached) return { keyId, masked, verdict: 'unreachable', reason: check.error, remaining: null };
  const f = check.finding;
  return {
    keyId,
    masked,
    verdict: f === null ? 'ok' : f.status,
    reason: f?.reason ?? null,
    remaining: check.credits?.remaining ?? null,
  };
}

/** Keys screened before they are added: each key's check, and which the upstream refuses. */
export interface Screening {
  rows: CheckRow[];
  /** Each key's check (recorded in the pool once the keys are added). */
  checks: KeyCheck[];
  refused: CheckRow[];
  unreachable: CheckRow[];
}

/** Checks at a time when screening a batch of keys. */
const SCREEN_CONCURRENCY = 8;

/**
 * Asks the upstream about keys about to be added to `pool` (a few at a time). A key the upstream
 * does not know or has deactivated is refused; one it cannot be asked about is not (the caller
 * adds it with a warning); one out of credits is a real key and is added. Null when the pool has
 * no upstream.
 */
export async function screenKeys(
  checker: Pick<KeyChecker, 'has' | 'checkKey'>,
  pool: string,
  keys: readonly string[],
): Promise<Screening | null> {
  if (!checker.has(pool)) return null;
  const gate = new Semaphore(SCREEN_CONCURRENCY);
  const checks = await Promise.all(
    keys.map((key) =>
      gate.runExclusive(async () => {
        const keyId = keyIdOf(key);
        return { keyId, masked: maskKey(key), check: (await checker.checkKey(pool, key, keyId))! };
      }),
    ),
  );
  const rows = checks.map((c) => checkRow(c.keyId, c.masked, c.check));
  return {
    rows,
    checks,
    refused: rows.filter((r) => r.verdict === 'invalid'),
    unreachable: rows.filter((r) => r.verdict === 'unreachable'),
  };
}
