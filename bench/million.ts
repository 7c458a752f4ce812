/**
 * A million keys across a restart: a fresh start on a key file of `BENCH_MILLION_KEYS` keys
 * (1,000,000), 300,000 handouts, a clean stop (the full state file), then a start on that state:
 * how long each start took to listen, RSS after each, and the state file's size. The "Fleet
 * scale" issue's goal: a restart on saved state within 2x a fresh start, RSS within 1.2x.
 * Run alone: node --import tsx bench/million.ts
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { rssMb, start } from './lib.js';

const KEYS = Number(process.env.BENCH_MILLION_KEYS ?? 1_000_000);

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
  const fresh = await timed();
  const freshRss = await rssMb(fresh.proc.proc.pid!);
  await autocannon({ url: `${fresh.proc.url}/api/plantid`, connections: 50, amount: 300_000 });
  await fresh.proc.stop();
  const stateMb = (await stat(join(dir, 'state.json'))).size / 2 ** 20;
  const again = await timed();
  await new Promise((r) => setTimeout(r, 3000)); // what the start left behind, after its first GCs
  const againRss = await rssMb(again.proc.proc.pid!);
  await again.proc.stop();
  const f = (n: number) => n.toFixed(2);
  console.log(
    `${KEYS.toLocaleString('en')} keys: fresh start ${(fresh.ms / 1000).toFixed(1)} s, ` +
      `RSS ${Math.round(freshRss)} MB; restart on saved state (${stateMb.toFixed(1)} MB) ` +
      `${(again.ms / 1000).toFixed(1)} s, RSS ${Math.round(againRss)} MB; ` +
      `ratios ${f(again.ms / fresh.ms)} (goal 2) and ${f(againRss / freshRss)} (goal 1.2)`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
