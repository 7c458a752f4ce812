// `npm test`: the linters beside the type check, the build and the tests, then one verdict. The
// linters (ESLint, Prettier) and tsc each run on about one core; side by side on a two-core
// machine they finish in the time of the slower, instead of one after the other. The linters'
// output is held and printed after the tests, so it never cuts into the test report.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { testPlan } from './files.mjs';

const root = join(import.meta.dirname, '..');

/** Runs a command; resolves with its exit code and, when `hold`, its output. */
function run(cmd, args, hold = false) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, stdio: hold ? ['ignore', 'pipe', 'pipe'] : 'inherit' });
    let out = '';
    if (hold) {
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
    }
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 1 : 0), out }));
  });
}

/**
 * tsc writes what it compiles and removes nothing: a test renamed or deleted would linger in
 * dist/test, compiled from a source that is gone. Removed here, with its maps and declarations.
 */
function removeStale(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      removeStale(path);
      if (readdirSync(path).length === 0) rmSync(path, { recursive: true });
      continue;
    }
    const compiled = /\.(js|js\.map|d\.ts|d\.ts\.map)$/u;
    if (!compiled.test(e.name)) continue; // copied as it is (a .json), not compiled
    const base = relative(join(root, 'dist'), path).replace(compiled, '');
    if (base === 'test/together.test') continue; // written below
    if (!existsSync(join(root, `${base}.ts`)) && !existsSync(join(root, `${base}.mjs`))) rmSync(path);
  }
}

const lint = run('npm', ['run', '--silent', 'lint'], true);
const build = await run('npx', ['tsc', '--noEmit', 'false']);
let tests = { code: 1 };
if (build.code === 0) {
  removeStale(join(root, 'dist/test'));
  for (const f of readdirSync(join(root, 'server/redis')).filter((f) => f.endsWith('.lua')))
    copyFileSync(join(root, 'server/redis', f), join(root, 'dist/server/redis', f));
  // The compiled tests run (tsc has just built them), which spares each process the TypeScript loader.
  const entry = 'dist/test/together.test.js';
  const plan = testPlan({ dist: true, togetherEntry: entry });
  const imports = plan.together.map((f) => `await import(${JSON.stringify(`./${relative('dist/test', f)}`)});`);
  writeFileSync(
    join(root, entry),
    `// Written by test/run.mjs: the suites that share one process.\n${imports.join('\n')}\n`,
  );
  tests = await run('node', ['--test', '--test-concurrency=4', ...plan.order]);
} else console.error('npm test: the type check failed; no test ran');
const linted = await lint;
if (linted.code !== 0) console.error(`npm test: lint failed:\n${linted.out}`);
else console.log('npm test: lint clean (eslint, prettier)');
process.exit(build.code || tests.code || linted.code);
