// Prints the test files for `npm test`, the slowest first: node:test runs files on a fixed number
// of workers in the order given, so starting the long ones (real processes under load) first lets
// the workers finish together instead of waiting on a long file started last.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const SLOWEST_FIRST = [
  'test/server/index.test.ts',
  'test/ecosystem.test.ts',
  'test/server/redis/pool.test.ts',
  'test/server/crash-limits.test.ts',
  'test/server/redis/backend.test.ts',
  'test/server/full-disk.test.ts',
  'test/cli/encryption.test.ts',
  'test/bot/index.test.ts',
  'test/dashboard/dashboard.test.ts',
  'test/server/pools/differential.test.ts',
  'test/server/pools/pool.test.ts',
  'test/server/lock.test.ts',
  'test/server/http/routes-health.test.ts',
];

function find(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? find(join(dir, e.name)) : e.name.endsWith('.test.ts') ? [join(dir, e.name)] : [],
  );
}

const all = find('test').sort();
const first = SLOWEST_FIRST.filter((f) => all.includes(f));
const ordered = [...first, ...all.filter((f) => !first.includes(f))];
// --dist: the compiled tests `npm test` runs (tsc has just built them into dist/), which spares
// each test process the TypeScript loader.
const dist = process.argv.includes('--dist');
console.log(ordered.map((f) => (dist ? join('dist', f.replace(/\.ts$/u, '.js')) : f)).join('\n'));
