// Which test files `npm test` (test/run.mjs) runs, and how. node:test runs each file it is given
// in a process of its own, on a fixed number of workers, in the order given. A process costs
// about half a second of CPU before its first test (Node, the runner, the imports), which is
// most of what a small suite costs: so the files below, which start real processes, load a
// server or wait on one, run alone, the longest first (so the workers finish together), and
// every other file runs in one process that imports them all (`together`), one after another.
// A new suite joins `together` unless it belongs below.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const ALONE_LONGEST_FIRST = [
  'test/server/index.test.ts',
  'test/server/redis/pool.test.ts',
  'test/ecosystem.test.ts',
  'test/server/crash-limits.test.ts',
  'test/client/package.test.ts',
  'test/server/http/proxy-sdk.test.ts',
  'test/server/redis/backend.test.ts',
  'test/server/full-disk.test.ts',
  'test/cli/encryption.test.ts',
  'test/bot/index.test.ts',
  'test/server/http/proxy-kindwise.test.ts',
  'test/server/http/apps.test.ts',
  'test/server/http/apps-redis.test.ts',
  'test/server/alerts.test.ts',
  'test/server/redis/cluster.test.ts',
  'test/server/redis/leases.test.ts',
  'test/server/pools-live.test.ts',
  'test/dashboard/dashboard.test.ts',
  'test/cli/keys.test.ts',
  'test/server/lock.test.ts',
  'test/server/pools/pool.test.ts',
  'test/server/pools/differential.test.ts',
  'test/server/http/routes-health.test.ts',
  'test/server/symlinks.test.ts',
];
/** Where the shared process starts among the others: its suites take about as long as the third. */
const TOGETHER_AT = 2;

function find(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? find(join(dir, e.name)) : e.name.endsWith('.test.ts') ? [join(dir, e.name)] : [],
  );
}

/**
 * The plan: `alone`, the files to give node:test, with `together` (the entry that imports the
 * rest) at its place; `together`, the files that entry imports. `dist`: their compiled paths.
 */
export function testPlan({ dist, togetherEntry }) {
  const all = find('test').sort();
  const alone = ALONE_LONGEST_FIRST.filter((f) => all.includes(f));
  const together = all.filter((f) => !alone.includes(f));
  const compiled = (f) => (dist ? join('dist', f.replace(/\.ts$/u, '.js')) : f);
  const order = alone.map(compiled);
  order.splice(TOGETHER_AT, 0, togetherEntry);
  return { order, together: together.map(compiled) };
}
