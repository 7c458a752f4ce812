import type { CreditWindows } from '../shared/stats.js';
import { UpstreamAgents } from '../server/upstream/agents.js';
import { UsageChecker } from '../server/upstream/checker.js';
import { usageUpstreams, type UpstreamConfig } from '../server/upstream/config.js';
import type { CheckRow } from '../server/upstream/screen.js';
import { createUsageFetcher, type UsageFetcher } from '../server/upstream/usage-client.js';

/**
 * The CLI's side of the upstream: `check <pool>`'s table and, with no server running, the
 * upstreams pools.json configures, asked from this process.
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

/** Asks the upstreams pools.json configures, from this process (no server running); `close` lets them go. */
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
