/** The layout docs/architecture.md describes: no import cycles between source files, none too long. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from './helpers/server.js';

const sources = execFileSync('git', ['ls-files', '*.ts'], { cwd: REPO_ROOT, encoding: 'utf8' })
  .trim()
  .split('\n')
  .filter((f) => !f.startsWith('test/'));

/** Each source file's relative imports, as repo paths. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const f of sources) {
    const text = readFileSync(resolve(REPO_ROOT, f), 'utf8');
    const deps = [...text.matchAll(/from '(\.{1,2}\/[^']+)'/gu)].map((m) =>
      relative(REPO_ROOT, resolve(REPO_ROOT, dirname(f), m[1]!.replace(/\.js$/u, '.ts'))),
    );
    graph.set(f, deps);
  }
  return graph;
}

describe('source layout', () => {
  it('no two source files import each other, directly or around a loop', () => {
    const graph = importGraph();
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const cycles: string[] = [];
    const visit = (f: string) => {
      state.set(f, 'open');
      stack.push(f);
      for (const d of graph.get(f) ?? []) {
        if (state.get(d) === 'open') cycles.push([...stack.slice(stack.indexOf(d)), d].join(' -> '));
        else if (!state.has(d)) visit(d);
      }
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of graph.keys()) if (!state.has(f)) visit(f);
    assert.ok(graph.size > 40, `read ${graph.size} source files`);
    assert.deepEqual(cycles, []);
  });

  it('folder arrows point one way: http/ and cli/ over ops/; ops/ over pools, keys, state, redis, upstream; pools/ over none of those; fs/ below keys/ and state/', () => {
    const graph = importGraph();
    const folder = (f: string) => /^server\/([^/]+)\//u.exec(f)?.[1] ?? (f.startsWith('cli/') ? 'cli' : null);
    const below = ['pools', 'keys', 'state', 'redis', 'upstream', 'fs'];
    const forbidden: Record<string, readonly string[]> = {
      ops: ['http', 'proxy', 'cli'],
      pools: ['keys', 'state', 'redis', 'upstream', 'http', 'fs', 'ops', 'proxy'],
      keys: ['state', 'redis', 'upstream', 'http', 'ops', 'proxy'],
      state: ['http', 'ops', 'proxy', 'upstream'],
      redis: ['http', 'ops', 'proxy'],
      upstream: ['http', 'ops', 'proxy'],
      fs: ['pools', 'keys', 'state', 'redis', 'upstream', 'http', 'ops', 'proxy'],
      // The proxy's attempt loop knows no Koa: http/ hands it a request read whole.
      proxy: ['http', 'ops'],
    };
    const wrong: string[] = [];
    for (const [f, deps] of graph) {
      const from = folder(f);
      if (from === null || !forbidden[from]) continue;
      for (const d of deps) if (forbidden[from]!.includes(folder(d) ?? '')) wrong.push(`${f} -> ${d}`);
    }
    assert.deepEqual(wrong, []);
    assert.ok(
      below.every((name) => [...graph.keys()].some((f) => folder(f) === name)),
      'a folder moved',
    );
  });

  it('the admin API and the CLI run use cases only through ops/: no key-file edit, registry or backend of their own', () => {
    // cli/offline.ts assembles Operations on the files; cli/recrypt.ts rewrites whole key files (no server use case).
    const assemblers = new Set(['cli/offline.ts', 'cli/recrypt.ts', 'server/http/app.ts']);
    const ownUseCase = /(keys\/keyedit|pools\/registry|state\/file-backend|redis\/backend)\.ts$/u;
    const wrong: string[] = [];
    for (const [f, deps] of importGraph()) {
      if (!/^(cli\/|server\/http\/)/u.test(f) || assemblers.has(f)) continue;
      for (const d of deps)
        if (ownUseCase.test(d) && !(f.startsWith('server/http/') && d === 'server/pools/registry.ts'))
          wrong.push(`${f} -> ${d}`);
    }
    assert.deepEqual(wrong, []);
    const admin = readFileSync(resolve(REPO_ROOT, 'server/http/admin.ts'), 'utf8');
    assert.doesNotMatch(admin, /registry|keyFiles/u, 'the admin router reaches pools only through ops');
  });

  it('pools/ holds rules and records only: no file system, no timers, no logger', () => {
    const found: string[] = [];
    for (const f of sources.filter((x) => x.startsWith('server/pools/'))) {
      const text = readFileSync(resolve(REPO_ROOT, f), 'utf8');
      for (const [what, re] of [
        ['node:fs', /from 'node:fs/u],
        ['a timer', /\b(setInterval|setTimeout|setImmediate)\(/u],
        ['the logger', /shared\/logger\.js|winston/u],
      ] as const)
        if (re.test(text)) found.push(`${f}: ${what}`);
    }
    assert.deepEqual(found, []);
  });

  it('no caller asks which backend it has: no instanceof Promise or backend flag outside the backends', () => {
    const backends = /^server\/(redis|state)\//u;
    const found: string[] = [];
    for (const f of sources.filter((x) => x.startsWith('server/') && !backends.test(x))) {
      const text = readFileSync(resolve(REPO_ROOT, f), 'utf8');
      if (/instanceof Promise/u.test(text)) found.push(`${f}: instanceof Promise`);
      if (/\.local\b|readonly local\b/u.test(text)) found.push(`${f}: a backend flag (local)`);
    }
    assert.deepEqual(found, []);
  });

  it('no source line passes 120 characters (Prettier lays out code at 120; strings and comments are wrapped by hand)', () => {
    const wide: string[] = [];
    for (const f of sources.filter((x) => !x.startsWith('client/dist/'))) {
      readFileSync(resolve(REPO_ROOT, f), 'utf8')
        .split('\n')
        .forEach((line, i) => line.length > 120 && wide.push(`${f}:${i + 1}`));
    }
    assert.deepEqual(wide, []);
  });

  it('no source file passes 400 lines (the Redis scripts included)', () => {
    const lua = execFileSync('git', ['ls-files', '*.lua'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim().split('\n');
    const long = [...sources, ...lua].filter(
      (f) => readFileSync(resolve(REPO_ROOT, f), 'utf8').split('\n').length > 400,
    );
    assert.deepEqual(long, []);
  });
});
