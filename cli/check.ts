import { createLogger } from '../shared/logger.js';
import type { CreditWindows } from '../shared/stats.js';
import type { KeyCipher } from '../server/keys/cipher.js';
import { addKeys, KeyEditError, validateNewKeys } from '../server/keys/keyedit.js';
import type { PoolRegistry } from '../server/pools/registry.js';
import { UpstreamAgents } from '../server/upstream/agents.js';
import { UsageChecker } from '../server/upstream/checker.js';
import { usageUpstreams, type UpstreamConfig } from '../server/upstream/config.js';
import { checkRow, screenKeys, type CheckRow, type Screening } from '../server/upstream/screen.js';
import { UpstreamSync } from '../server/upstream/sync.js';
import { createUsageFetcher, type UsageFetcher } from '../server/upstream/usage-client.js';
import { CliError } from './errors.js';

/**
 * The CLI's side of the upstream: `check <pool>`'s table and, with no server running, `add`
 * with its checks and `check`, asked from this process (pools.json's upstreams).
 */

const WINDOWS: ReadonlyArray<keyof CreditWindows> = ['day', 'week', 'month', 'total'];

/** `check`'s table: one row a key, masked, with what the upstream said and the credits left per window. */
export function printChecks(out: (l: string) => void, pool: string, rows: readonly CheckRow[]): void {
  out(`${pool}: ${rows.length} key${rows.length === 1 ? '' : 's'} checked`);
  out(
    `  ${'keyId'.padEnd(12)}  ${'key'.padEnd(11)}  ${'upstream'.padEnd(11)}  ` +
      `${WINDOWS.map((w) => w.padStart(7)).join(' ')}  reason`,
  );
  for (const r of rows) {
    const left = WINDOWS.map((w) => String(r.remaining?.[w] ?? '-').padStart(7)).join(' ');
    out(`  ${r.keyId}  ${r.masked.padEnd(11)}  ${r.verdict.padEnd(11)}  ${left}${r.reason ? `  ${r.reason}` : ''}`);
  }
}

/**
 * Asks the upstreams pools.json configures from this process (no server running): the checks
 * before `add`, and with a registry of the saved state, `check`. `close` lets go of the connections.
 */
export function offlineChecker(
  upstreams: ReadonlyMap<string, UpstreamConfig>,
  timeoutMs: number,
  fetchUsage?: UsageFetcher,
): { checker: UsageChecker; close(): Promise<void> } {
  const agents = new UpstreamAgents();
  return {
    checker: new UsageChecker({
      upstreams: usageUpstreams(upstreams),
      fetchUsage: fetchUsage ?? createUsageFetcher(agents, timeoutMs),
      clock: Date.now,
    }),
    close: () => agents.close(),
  };
}

/** Checks every key of `pool`, recording the answers in the registry's state; the rows to print. */
export async function checkPoolOffline(
  registry: PoolRegistry,
  checker: UsageChecker,
  pool: string,
): Promise<CheckRow[]> {
  const sync = new UpstreamSync({
    registry,
    checker,
    logger: createLogger({ level: 'error', file: null, console: false }),
    intervalMs: 0,
    claim: async () => true,
  });
  return (await sync.checkPool(pool)).map((c) => checkRow(c.keyId, c.masked, c.check));
}

/**
 * `add` with no server: a pool with an upstream asks it about the keys first (refusing keys it
 * rejects unless forced; adding unchecked, with a warning, when it cannot be asked), then the
 * key file is edited. Nothing is written when a key is refused.
 */
export async function addOffline(
  to: {
    path: string;
    upstreams: ReadonlyMap<string, UpstreamConfig>;
    timeoutMs: number;
    cipher: KeyCipher | null;
    fetchUsage?: UsageFetcher;
  },
  pool: string,
  keys: string[],
  force: boolean,
): Promise<{ added: Array<{ keyId: string; masked: string }>; warnings: string[] }> {
  const warnings: string[] = [];
  try {
    validateNewKeys(keys);
    const asker = offlineChecker(to.upstreams, to.timeoutMs, to.fetchUsage);
    let screening: Screening | null;
    try {
      screening = await screenKeys(asker.checker, pool, keys);
    } finally {
      await asker.close();
    }
    if (screening && screening.refused.length > 0) {
      const which = screening.refused.map((r) => `${r.keyId} (${r.masked}): ${r.reason}`).join('; ');
      if (!force)
        throw new CliError(
          `the upstream rejects ${screening.refused.length} of the keys: ${which}; nothing was added (--force ` +
            `adds them anyway)`,
        );
      warnings.push(`added ${screening.refused.length} key(s) the upstream rejects, as forced: ${which}`);
    }
    if (screening && screening.unreachable.length > 0)
      warnings.push(
        `the upstream could not be asked about ${screening.unreachable.length} key(s) ` +
          `(${screening.unreachable[0]!.reason}); added unchecked`,
      );
    return { added: await addKeys(to.path, keys, to.cipher), warnings };
  } catch (err) {
    if (err instanceof KeyEditError) throw new CliError(err.message);
    throw err;
  }
}
