import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { Agent, request, type Dispatcher } from 'undici';
import { fileURLToPath } from 'node:url';
import { loadServerConfig } from '../../server/config.js';
import { startKeywarden, type RunningServer } from '../../server/start.js';
import { FileBackend } from '../../server/state/file-backend.js';
import { FileStore } from '../../server/state/file.js';
import { processProbe, StateLock } from '../../server/state/lock.js';
import type { StateStore } from '../../server/state/store.js';
import type { StateBackend } from '../../server/state/backend.js';
import type { Logger } from '../../shared/logger.js';
import type { FakeClock } from './clock.js';
import { memoryLogger } from './logs.js';
import { deferCleanup, tempDir } from './tmp.js';

/** The repository: the nearest folder up with Keywarden's package.json (tests run from test/ through tsx, or compiled from dist/test/). */
export const REPO_ROOT = ((): string => {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    try {
      if ((JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string }).name === 'keywarden')
        return `${dir}/`;
    } catch {
      // not here
    }
    if (dirname(dir) === dir) throw new Error('test helpers: the keywarden repository was not found above them');
  }
})();
const TSX = import.meta.resolve('tsx');

export interface Layout {
  dir: string;
  keysDir: string;
  stateFile: string;
  logFile: string;
}

/**
 * pools.json for a test: the built-in pools' default upstreams (plant.id, crop.kindwise.com)
 * turned off unless the test names one, so no test ever sends anything off 127.0.0.1.
 */
export function offlinePools(pools: unknown = {}): unknown {
  if (typeof pools !== 'object' || pools === null || Array.isArray(pools)) return pools;
  const out: Record<string, unknown> = { ...(pools as Record<string, unknown>) };
  for (const name of ['plantid', 'healthid']) {
    const entry = out[name] ?? {};
    if (typeof entry === 'object' && entry !== null && !('upstream' in entry)) out[name] = { ...entry, upstream: null };
  }
  return out;
}

/** A temp dir with keys/, optional key files and pools.json (see offlinePools). */
export async function makeLayout(
  t: TestContext,
  keys: Record<string, string[] | string> = {},
  pools?: unknown,
  opts: { keep?: boolean } = {},
): Promise<Layout> {
  const dir = opts.keep ? await mkdtemp(join(tmpdir(), 'keywarden-')) : await tempDir(t);
  const keysDir = join(dir, 'keys');
  await mkdir(keysDir);
  for (const [pool, content] of Object.entries(keys)) {
    await writeFile(join(keysDir, `${pool}.txt`), Array.isArray(content) ? `${content.join('\n')}\n` : content);
  }
  await writeFile(join(keysDir, 'pools.json'), JSON.stringify(offlinePools(pools)));
  return { dir, keysDir, stateFile: join(dir, 'api_state.json'), logFile: join(dir, 'logs', 'server.log') };
}

export interface InProcess extends RunningServer {
  layout: Layout;
  lines: string[];
}

/** The real server in this process, on an ephemeral loopback port, stopped after the test. */
export async function startInProcess(
  t: TestContext,
  opts: {
    keys?: Record<string, string[] | string>;
    pools?: unknown;
    env?: Record<string, string>;
    clock?: FakeClock;
    store?: StateStore;
    layout?: Layout;
    /** Another state backend than the layout's state file (Redis). */
    backend?: (logger: Logger) => StateBackend;
  } = {},
): Promise<InProcess> {
  const layout = opts.layout ?? (await makeLayout(t, opts.keys, opts.pools));
  const config = loadServerConfig({
    PORT: '0',
    KEYS_DIR: layout.keysDir,
    STATE_FILE: layout.stateFile,
    LOG_FILE: layout.logFile,
    APPS_FILE: join(layout.dir, 'apps.json'),
    AUDIT_FILE: join(layout.dir, 'audit.log'),
    ...opts.env,
  });
  const { logger, lines } = memoryLogger();
  const running = await startKeywarden(config, {
    logger,
    backend:
      opts.backend?.(logger) ??
      new FileBackend(opts.store ?? new FileStore(layout.stateFile), {
        clock: opts.clock?.now ?? Date.now,
        logger,
        intervalMs: config.stateSaveIntervalMs,
        lock: opts.store ? undefined : new StateLock(layout.stateFile, processProbe(process.pid, process.kill)),
      }),
    clock: opts.clock?.now,
    keyFilePollMs: 100,
    version: 'test',
  });
  deferCleanup(t, () => running.stop('test end'));
  return { ...running, layout, lines };
}

export interface Spawned {
  proc: ChildProcess;
  /** IPC messages from the child (when spawned with ipc). */
  messages: unknown[];
  url: string;
  output: () => string;
  /** Sends a signal and resolves with the exit code (or the signal name). */
  kill(signal: NodeJS.Signals): Promise<number | string>;
  exited: Promise<number | string>;
}

/**
 * How to run an entry point (`server/index.ts`, `bot/index.ts`) as a real process: the compiled
 * dist/ file (what `npm start` runs, at half the start-up CPU of transpiling) when `npm test`
 * has just built it, else the source through tsx, so a test run alone never runs stale code.
 */
export function entryArgs(entry: string): string[] {
  const built = join(REPO_ROOT, 'dist', entry.replace(/\.ts$/u, '.js'));
  const newestSource = (dir: string): number =>
    Math.max(
      0,
      ...readdirSync(dir, { withFileTypes: true }).map((e) =>
        e.isDirectory() ? newestSource(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs,
      ),
    );
  try {
    const sources = ['server', 'shared', 'bot'].map((d) => newestSource(join(REPO_ROOT, d)));
    if (statSync(built).mtimeMs >= Math.max(...sources)) return [built];
  } catch {
    // not built
  }
  return ['--import', TSX, join(REPO_ROOT, entry)];
}

const SERVER_ARGS = entryArgs('server/index.ts');

/** Runs the real server process (cwd = layout dir, so no repo .env leaks in). */
export function runServerProcess(
  layout: Layout,
  /** Added to the environment; a variable set to undefined is left out (PORT included). */
  env: Record<string, string | undefined> = {},
  ipc = false,
): { proc: ChildProcess; output: () => string; exited: Promise<number | string> } {
  const all: Record<string, string | undefined> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? layout.dir,
    PORT: '0',
    KEYS_DIR: layout.keysDir,
    STATE_FILE: layout.stateFile,
    LOG_FILE: layout.logFile,
    ...env,
  };
  const proc = spawn(process.execPath, SERVER_ARGS, {
    cwd: layout.dir,
    env: Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined)) as Record<string, string>,
    stdio: ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  const exited = new Promise<number | string>((resolve) =>
    // 'close', not 'exit': the child's last output has been read by then.
    proc.once('close', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  return { proc, output: () => out, exited };
}

/** Spawns the real server process and waits until it listens. Killed after the test if still running. */
export async function spawnServer(
  t: TestContext,
  layout: Layout,
  env: Record<string, string | undefined> = {},
  ipc = false,
): Promise<Spawned> {
  const { proc, output, exited } = runServerProcess(layout, env, ipc);
  const messages: unknown[] = [];
  if (ipc) proc.on('message', (m) => messages.push(m));
  t.after(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 20 s:\n${output()}`)), 20_000);
    const check = () => {
      const m = /listening on (http:\/\/\S+)/u.exec(output());
      if (m) {
        clearTimeout(timer);
        proc.stdout!.off('data', check);
        resolve(m[1]!);
      }
    };
    proc.stdout!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening:\n${output()}`));
    });
  });
  return {
    proc,
    messages,
    url,
    output,
    exited,
    kill(signal) {
      proc.kill(signal);
      return exited;
    },
  };
}

/**
 * A JSON answer as the tests read it: by path, each read checked by the assertion it feeds.
 * `unknown` would want a cast at every read, and the cast would check nothing more.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the one place: see above
export type Json = any;

/**
 * The tests' HTTP client: undici's request over one keep-alive agent. It costs about a third of
 * the CPU of fetch, and the tests that load a server with thousands of requests spent most of
 * theirs there. It follows no redirect (fetch would): a test sees the answer as the server gave it.
 */
const client = new Agent();

async function send(url: string, init: RequestInit): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await request(url, {
    dispatcher: client,
    method: (init.method ?? 'GET') as Dispatcher.HttpMethod,
    headers: Object.fromEntries(new Headers(init.headers)),
    body: init.body as string | Buffer | undefined,
    signal: init.signal ?? undefined,
  });
  const headers = new Headers();
  for (const [name, value] of Object.entries(res.headers)) {
    for (const v of Array.isArray(value) ? value : [value]) if (v !== undefined) headers.append(name, v);
  }
  return { status: res.statusCode, headers, text: await res.body.text() };
}

export async function getJson(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Json; headers: Headers }> {
  const res = await send(url, init);
  return { status: res.status, body: res.text === '' ? null : JSON.parse(res.text), headers: res.headers };
}

export function postJson(url: string, body: unknown, headers: Record<string, string> = {}) {
  return getJson(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** Any request, its answer read: the body as JSON when it is JSON, else as text (`text` either way); `json` sends one. */
export async function call(
  url: string,
  init: RequestInit & { json?: unknown } = {},
): Promise<{ status: number; headers: Headers; body: Json; text: string }> {
  const headers = new Headers(init.headers);
  if (init.json !== undefined) headers.set('content-type', 'application/json');
  const res = await send(url, {
    ...init,
    headers,
    body: init.json !== undefined ? JSON.stringify(init.json) : init.body,
  });
  const text = res.text;
  let body: Json = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, body, text };
}
