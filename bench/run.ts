/**
 * npm run bench: handout throughput and latency against a bare Koa baseline, run side by side on
 * this machine, plus RSS growth over 1,000,000 handouts. Prints a table of ratios and writes
 * bench/results.json. Not a test: nothing here asserts; the targets are printed with the numbers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const TSX = import.meta.resolve('tsx');
const CONNECTIONS = 50;
const DURATION_SEC = Number(process.env.BENCH_DURATION_SEC ?? 10);
const MEMORY_HANDOUTS = Number(process.env.BENCH_MEMORY_HANDOUTS ?? 1_000_000);

interface Proc {
  proc: ChildProcess;
  url: string;
  stop(): Promise<void>;
}

function start(args: string[], env: Record<string, string>): Promise<Proc> {
  const proc = spawn(process.execPath, ['--import', TSX, ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
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

async function startServer(dir: string, keys: number): Promise<Proc> {
  const keysDir = join(dir, `keys-${keys}`);
  await mkdir(keysDir, { recursive: true });
  const lines = Array.from({ length: keys }, (_, i) => `bench-${i}-${randomBytes(16).toString('hex')}`);
  await writeFile(join(keysDir, 'plantid.txt'), `${lines.join('\n')}\n`);
  return start(['server/index.ts'], {
    PORT: '0',
    KEYS_DIR: keysDir,
    STATE_FILE: join(dir, `state-${keys}.json`),
    LOG_FILE: join(dir, `server-${keys}.log`),
    LOG_LEVEL: 'info', // the 'listening on' line is info; handouts log nothing at info
  });
}

interface Run {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
}

async function load(url: string, opts: { durationSec?: number; amount?: number }): Promise<Run> {
  const r = await autocannon({
    url: `${url}/api/plantid`,
    connections: CONNECTIONS,
    ...(opts.amount ? { amount: opts.amount } : { duration: opts.durationSec ?? DURATION_SEC }),
  });
  return { rps: r.requests.average, p50Ms: r.latency.p50, p99Ms: r.latency.p99, non2xx: r.non2xx, errors: r.errors };
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/u.exec(status)![1]) / 1024;
}

async function measure(label: string, proc: Proc): Promise<Run> {
  await load(proc.url, { durationSec: 2 }); // warm-up: JIT, connections
  const r = await load(proc.url, {});
  process.stderr.write(`${label}: ${Math.round(r.rps)} req/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms\n`);
  return r;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'keywarden-bench-'));
  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    machine: `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
    connections: CONNECTIONS,
    durationSec: DURATION_SEC,
  };
  try {
    // Each target runs alone (2 cores: one for autocannon, one for the server), baseline first and last.
    const base = await start(['bench/baseline.ts'], {});
    const baseline1 = await measure('bare koa', base);
    await base.stop();

    const small = await startServer(dir, 3);
    const pool3 = await measure('3-key pool', small);
    await small.stop();

    const big = await startServer(dir, 100_000);
    const pool100k = await measure('100,000-key pool', big);
    await big.stop();

    const base2 = await start(['bench/baseline.ts'], {});
    const baseline2 = await measure('bare koa (again)', base2);
    await base2.stop();
    const baselineRps = (baseline1.rps + baseline2.rps) / 2;

    // Memory: RSS after the first 10,000 handouts vs after 1,000,000, on the 3-key pool.
    const mem = await startServer(dir, 3);
    await load(mem.url, { amount: 10_000 });
    const rssAfter10k = await rssMb(mem.proc.pid!);
    await load(mem.url, { amount: MEMORY_HANDOUTS - 10_000 });
    const rssAfter1M = await rssMb(mem.proc.pid!);
    await mem.stop();

    results.baseline = { first: baseline1, last: baseline2, meanRps: baselineRps };
    results.pool3 = pool3;
    results.pool100k = pool100k;
    results.memory = { handouts: MEMORY_HANDOUTS, rssAfter10kMb: rssAfter10k, rssAfterAllMb: rssAfter1M, growthMb: rssAfter1M - rssAfter10k };
    const ratios = {
      pool3VsBaseline: pool3.rps / baselineRps,
      pool100kVsBaseline: pool100k.rps / baselineRps,
      pool100kVsPool3: pool100k.rps / pool3.rps,
    };
    results.ratios = ratios;
    const targets = {
      'throughput >= 0.85 x bare Koa (3 keys)': ratios.pool3VsBaseline >= 0.85,
      'throughput >= 0.85 x bare Koa (100k keys)': ratios.pool100kVsBaseline >= 0.85,
      '100k-key pool within 10% of 3-key pool': ratios.pool100kVsPool3 >= 0.9,
      'p99 < 5 ms at 50 connections (3 keys)': pool3.p99Ms < 5,
      'p99 < 5 ms at 50 connections (100k keys)': pool100k.p99Ms < 5,
      'RSS growth over 1M handouts < 50 MB': rssAfter1M - rssAfter10k < 50,
    };
    results.targets = targets;

    const f = (n: number) => n.toFixed(2);
    console.log(`\nKeywarden bench — ${results.date as string} — ${results.machine as string}`);
    console.log(`GET /api/plantid, ${CONNECTIONS} connections, ${DURATION_SEC} s each\n`);
    console.log('| target | req/s | p50 ms | p99 ms | vs bare Koa |');
    console.log('|---|---|---|---|---|');
    console.log(`| bare Koa (mean of 2) | ${Math.round(baselineRps)} | ${baseline1.p50Ms} | ${baseline1.p99Ms} | 1.00 |`);
    console.log(`| 3-key pool | ${Math.round(pool3.rps)} | ${pool3.p50Ms} | ${pool3.p99Ms} | ${f(ratios.pool3VsBaseline)} |`);
    console.log(`| 100,000-key pool | ${Math.round(pool100k.rps)} | ${pool100k.p50Ms} | ${pool100k.p99Ms} | ${f(ratios.pool100kVsBaseline)} |`);
    console.log(`\n100k vs 3 keys: ${f(ratios.pool100kVsPool3)}; RSS ${f(rssAfter10k)} MB after 10k handouts, ${f(rssAfter1M)} MB after ${MEMORY_HANDOUTS.toLocaleString('en')} (+${f(rssAfter1M - rssAfter10k)} MB)\n`);
    for (const [name, ok] of Object.entries(targets)) console.log(`${ok ? 'met   ' : 'MISSED'} ${name}`);
    await writeFile(join(ROOT, 'bench', 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${(err as Error).message}`);
  process.exit(1);
});
