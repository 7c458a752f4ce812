/** What the bench scripts share: starting a server process, medians and their intervals, RSS. */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../', import.meta.url));
const TSX = import.meta.resolve('tsx');

export interface Proc {
  proc: ChildProcess;
  url: string;
  stop(): Promise<void>;
}

/**
 * Every process the bench started and has not seen exit: killed when the bench ends any other
 * way than through their stop() (Ctrl-C, a kill, an error), so none is left running.
 */
const running = new Set<ChildProcess>();
let cleanupHooked = false;

function killAll(): void {
  for (const proc of running) proc.kill('SIGKILL');
  running.clear();
}

function hookCleanup(): void {
  if (cleanupHooked) return;
  cleanupHooked = true;
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
    process.once(signal, () => {
      killAll();
      process.exit(130);
    });
  process.on('uncaughtException', (err) => {
    killAll();
    console.error(err);
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    killAll();
    console.error(err);
    process.exit(1);
  });
}

/** Kills `proc` too when the bench ends early (a process the bench started some other way: Redis). */
export function killOnExit(proc: ChildProcess | null | undefined): void {
  if (!proc) return;
  hookCleanup();
  running.add(proc);
  proc.once('exit', () => running.delete(proc));
}

/** Runs a TypeScript entry (through tsx) and resolves once it prints `listening on <url>`. */
export function start(args: string[], env: Record<string, string>): Promise<Proc> {
  hookCleanup();
  const proc = spawn(process.execPath, ['--import', TSX, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(proc);
  proc.once('exit', () => running.delete(proc));
  let out = '';
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/u.exec(out);
      if (m) {
        proc.stdout!.off('data', onData);
        proc.stdout!.resume();
        resolve({
          proc,
          url: m[1]!,
          stop: () =>
            new Promise((r) => {
              proc.once('exit', () => r());
              proc.kill('SIGTERM');
            }),
        });
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    proc.once('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
  });
}

/** The resident set size of a process, in MB. */
export async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/u.exec(status)![1]) / 1024;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * 95% interval of the median of per-round ratios, by bootstrap over rounds: how far this run's
 * own noise could move that median. Seeded (mulberry32), so the same rounds give the same
 * interval. A ratio whose interval straddles a target's line has not settled that target.
 */
export function medianInterval(ratios: number[], resamples = 10_000): [number, number] {
  let seed = 0x2545f491;
  const random = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const medians = Array.from({ length: resamples }, () =>
    median(ratios.map(() => ratios[Math.floor(random() * ratios.length)]!)),
  );
  medians.sort((a, b) => a - b);
  return [medians[Math.floor(0.025 * resamples)]!, medians[Math.ceil(0.975 * resamples) - 1]!];
}

/**
 * For the bench's own servers (the baselines, the upstream): listens on a free loopback port,
 * prints `listening on <url>` (what start() waits for), and closes on SIGTERM.
 */
export function announce(server: Server): void {
  server.keepAliveTimeout = 65_000;
  server.listen(0, '127.0.0.1', () => {
    const addr = server.address();
    process.stdout.write(`listening on http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}\n`);
  });
  process.on('SIGTERM', () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}

let serverSeq = 0;

/**
 * A Keywarden server on generated made-up keys (`keys` in pool plantid, no upstream) in `dir`,
 * with `env` and `pools` (pools.json) on top of the bench's defaults.
 */
export async function startServer(
  dir: string,
  keys: number,
  env: Record<string, string> = {},
  pools?: unknown,
): Promise<Proc> {
  const keysDir = join(dir, `keys-${keys}${pools ? '-pools' : ''}`);
  await mkdir(keysDir, { recursive: true });
  // The bench keys are made up: no upstream to sync them with (and nothing leaves 127.0.0.1).
  await writeFile(
    join(keysDir, 'pools.json'),
    JSON.stringify({
      healthid: { upstream: null },
      ...(pools as object),
      plantid: { ...(pools as { plantid?: object })?.plantid, upstream: null },
    }),
  );
  const file = join(keysDir, 'plantid.txt');
  const exists = await readFile(file, 'utf8').then(
    () => true,
    () => false,
  );
  if (!exists) {
    const lines = Array.from({ length: keys }, (_, i) => `bench-${i}-${randomBytes(16).toString('hex')}`);
    await writeFile(file, `${lines.join('\n')}\n`);
  }
  const n = ++serverSeq;
  return start(['server/index.ts'], {
    PORT: '0',
    KEYS_DIR: keysDir,
    STATE_FILE: join(dir, `state-${n}.json`),
    LOG_FILE: join(dir, `server-${n}.log`),
    LOG_LEVEL: 'info', // the 'listening on' line is info; handouts log nothing at info
    ...env,
  });
}
