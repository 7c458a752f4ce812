/**
 * A million keys across a restart: a fresh start on a key file of `BENCH_MILLION_KEYS` keys
 * (1,000,000), 300,000 handouts, a clean stop (the full state file), then a start on that state:
 * how long each start took to listen, RSS of each as it listened and 3 s later (measured alike),
 * and the state file's size. Then, on that
 * server and on a 3-key one, /healthz's latency while handouts run at full load (10 s, saves of
 * the state every 2 s among them) and the event loop's longest stall meanwhile (prom-client's
 * gauge from monitorEventLoopDelay). The "Fleet scale" issue's goals: a restart on saved state
 * within 2x a fresh start, RSS within 1.2x, /healthz p99 under load within 1.3x of a 3-key pool.
 * Run alone: node --import tsx bench/million.ts
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { rssMb, start, startServer } from './lib.js';

const KEYS = Number(process.env.BENCH_MILLION_KEYS ?? 1_000_000);
const LOAD_SEC = 10;

/** V8's heap, used and committed (MB), from the server's /metrics: what RSS holds beyond the live objects. */
async function heapMb(url: string): Promise<{ used: number; total: number }> {
  const m = await fetch(`${url}/metrics`).then((r) => r.text());
  const mb = (name: string) => Number(new RegExp(`^keywarden_${name} (\\S+)`, 'mu').exec(m)?.[1] ?? NaN) / 2 ** 20;
  return { used: mb('nodejs_heap_size_used_bytes'), total: mb('nodejs_heap_size_total_bytes') };
}

/**
 * /healthz latency (autocannon, one connection) while 50 connections take handouts, and the
 * longest the event loop stalled meanwhile (a scrape of /metrics first resets prom-client's gauge).
 */
async function healthUnderLoad(url: string): Promise<{ p50Ms: number; p99Ms: number; stallMs: number }> {
  await fetch(`${url}/metrics`).then((r) => r.text());
  const [, health] = await Promise.all([
    autocannon({ url: `${url}/api/plantid`, connections: 50, duration: LOAD_SEC }),
    autocannon({ url: `${url}/healthz`, connections: 1, duration: LOAD_SEC }),
  ]);
  const metrics = await fetch(`${url}/metrics`).then((r) => r.text());
  const stall = Number(/^keywarden_nodejs_eventloop_lag_max_seconds (\S+)/mu.exec(metrics)?.[1] ?? NaN);
  return { p50Ms: health.latency.p50, p99Ms: health.latency.p99, stallMs: stall * 1000 };
}

const dir = await mkdtemp(join(tmpdir(), 'keywarden-million-'));
try {
  const keysDir = join(dir, 'keys');
  await mkdir(keysDir);
  await writeFile(
    join(keysDir, 'pools.json'),
    JSON.stringify({ healthid: { upstream: null }, plantid: { upstream: null } }),
  );
  const lines = Array.from({ length: KEYS }, (_, i) => `bench-${i}-${randomBytes(16).toString('hex')}`);
  await writeFile(join(keysDir, 'plantid.txt'), `${lines.join('\n')}\n`);
  // info: the "listening on" line is what start() waits for; LOG_ACCESS off: no line a request.
  const env = {
    PORT: '0',
    KEYS_DIR: keysDir,
    STATE_FILE: join(dir, 'state.json'),
    LOG_FILE: join(dir, 'server.log'),
    LOG_LEVEL: 'info',
    LOG_ACCESS: 'false',
  };
  const timed = async () => {
    const t = performance.now();
    const proc = await start(['server/index.ts'], env);
    return { proc, ms: performance.now() - t };
  };
  /** RSS as a start listens, and 3 s later (its first save and first collections behind it): each start alike. */
  const settle = async (proc: { proc: { pid?: number }; url: string }) => {
    const atListen = await rssMb(proc.proc.pid!);
    await new Promise((r) => setTimeout(r, 3000));
    return { atListen, rss: await rssMb(proc.proc.pid!), heap: await heapMb(proc.url) };
  };
  const fresh = await timed();
  const { atListen: freshAtListen, rss: freshRss, heap: freshHeap } = await settle(fresh.proc);
  await autocannon({ url: `${fresh.proc.url}/api/plantid`, connections: 50, amount: 300_000 });
  await fresh.proc.stop();
  const stateMb = (await stat(join(dir, 'state.json'))).size / 2 ** 20;
  const again = await timed();
  const { atListen: againAtListen, rss: againRss, heap: againHeap } = await settle(again.proc);
  const big = await healthUnderLoad(again.proc.url);
  const loadedHeap = await heapMb(again.proc.url);
  const loadedRss = await rssMb(again.proc.proc.pid!);
  await again.proc.stop();
  const small = await startServer(dir, 3, { LOG_ACCESS: 'false' });
  await autocannon({ url: `${small.url}/api/plantid`, connections: 50, duration: 2 }); // warm-up
  const three = await healthUnderLoad(small.url);
  await small.stop();
  const f = (n: number) => n.toFixed(2);
  console.log(
    `${KEYS.toLocaleString('en')} keys: fresh start ${(fresh.ms / 1000).toFixed(1)} s, ` +
      `RSS ${Math.round(freshRss)} MB; restart on saved state (${stateMb.toFixed(1)} MB) ` +
      `${(again.ms / 1000).toFixed(1)} s, RSS ${Math.round(againRss)} MB; ` +
      `ratios ${f(again.ms / fresh.ms)} (goal 2) and ${f(againRss / freshRss)} (goal 1.2), 3 s after each listened ` +
      `(as each listened: ${Math.round(freshAtListen)} and ${Math.round(againAtListen)} MB, ` +
      `${f(againAtListen / freshAtListen)})`,
  );
  console.log(
    `V8 heap used/committed: ${Math.round(freshHeap.used)}/${Math.round(freshHeap.total)} MB fresh, ` +
      `${Math.round(againHeap.used)}/${Math.round(againHeap.total)} MB after the restart, ` +
      `${Math.round(loadedHeap.used)}/${Math.round(loadedHeap.total)} MB (RSS ${Math.round(loadedRss)} MB) ` +
      `after ${LOAD_SEC} s of handouts on it`,
  );
  console.log(
    `/healthz under load: p50/p99 ${big.p50Ms}/${big.p99Ms} ms with ${KEYS.toLocaleString('en')} keys, ` +
      `${three.p50Ms}/${three.p99Ms} ms with 3 keys (ratio ${f(big.p99Ms / Math.max(1, three.p99Ms))}, goal 1.3); ` +
      `longest event-loop stall ${Math.round(big.stallMs)} ms and ${Math.round(three.stallMs)} ms`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
