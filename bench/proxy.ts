/**
 * npm run bench (second part): Keywarden's proxy against a minimal undici pass-through proxy
 * (bench/passthrough.ts), side by side in one run, both in front of the same local upstream that
 * answers at once (bench/upstream.ts). Small JSON requests at 50 connections (throughput, p50),
 * one connection (the latency a proxy adds with no queue), and 1 MB request bodies at 50
 * connections (throughput, and the RSS Keywarden grows by). The GETs are usage_info, free calls
 * in Keywarden's plantid pool (no handout); the 1 MB POSTs are identifications (a handout each,
 * their answer's access_token pinned). Prints a table and the targets, and
 * writes bench/proxy-results.json. Not a test: nothing here asserts.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { median, medianInterval, ROOT, rssMb, start, type Proc } from './lib.js';

const ROUNDS = Number(process.env.BENCH_PROXY_ROUNDS ?? 10);
const SLICE_SEC = Number(process.env.BENCH_SLICE_SEC ?? 2);
const LEAD_IN_SEC = Number(process.env.BENCH_LEAD_IN_SEC ?? 1);
const CONNECTIONS = 50;
const BIG_BYTES = 1024 * 1024;

interface Run {
  rps: number;
  /**
   * Mean latency from throughput (connections / req/s): autocannon's latencies are whole
   * milliseconds, too coarse for what a proxy adds on one connection.
   */
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
}

type Load = { path: string; connections: number; body?: Buffer };

const SMALL: Load = { path: '/api/v3/usage_info', connections: CONNECTIONS };
const ONE: Load = { path: '/api/v3/usage_info', connections: 1 };
const BIG: Load = { path: '/api/v3/identification', connections: CONNECTIONS, body: Buffer.alloc(BIG_BYTES, 0x41) };

async function load(base: string, l: Load, durationSec: number): Promise<Run> {
  const r = await autocannon({
    url: `${base}${l.path}`,
    connections: l.connections,
    duration: durationSec,
    ...(l.body ? { method: 'POST', body: l.body, headers: { 'content-type': 'application/json' } } : {}),
  });
  const rps = r.requests.total / r.duration;
  return {
    rps,
    meanMs: (1000 * l.connections) / rps,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    non2xx: r.non2xx,
    errors: r.errors,
  };
}

/** The run with the median throughput, p50 and p99 the medians of all rounds'. */
function medianRun(runs: Run[]): Run {
  return {
    ...runs[0]!,
    rps: median(runs.map((r) => r.rps)),
    meanMs: median(runs.map((r) => r.meanMs)),
    p50Ms: median(runs.map((r) => r.p50Ms)),
    p99Ms: median(runs.map((r) => r.p99Ms)),
    non2xx: runs.reduce((n, r) => n + r.non2xx, 0),
    errors: runs.reduce((n, r) => n + r.errors, 0),
  };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'keywarden-bench-proxy-'));
  const procs: Proc[] = [];
  try {
    const upstream = await start(['bench/upstream.ts'], {});
    procs.push(upstream);
    const passthrough = await start(['bench/passthrough.ts'], { UPSTREAM: upstream.url });
    procs.push(passthrough);
    const keysDir = join(dir, 'keys');
    await mkdir(keysDir);
    await writeFile(join(keysDir, 'plantid.txt'), 'bench-key-0\nbench-key-1\nbench-key-2\n');
    await writeFile(
      join(keysDir, 'pools.json'),
      JSON.stringify({ plantid: { upstream: { origin: upstream.url } }, healthid: { upstream: null } }),
    );
    const server = (name: string, env: Record<string, string> = {}) =>
      start(['server/index.ts'], {
        PORT: '0',
        KEYS_DIR: keysDir,
        STATE_FILE: join(dir, `${name}.json`),
        LOG_FILE: join(dir, `${name}.log`),
        LOG_LEVEL: 'info', // as deployed: one log line a proxied request
        UPSTREAM_SYNC_INTERVAL_MS: '0',
        ...env,
      });
    const keywarden = await server('keywarden');
    procs.push(keywarden);
    // The same with LOG_ACCESS=false, measured with small JSON only: what the access log costs.
    const quiet = await server('quiet', { LOG_ACCESS: 'false' });
    procs.push(quiet);
    const targets: Array<[string, string]> = [
      ['pass-through', passthrough.url],
      ['keywarden', `${keywarden.url}/proxy/plantid`],
    ];
    const QUIET = 'keywarden, LOG_ACCESS=false';
    for (const [, base] of targets) for (const l of [SMALL, BIG]) await load(base, l, 2); // warm-up: JIT, connections
    await load(`${quiet.url}/proxy/plantid`, SMALL, 2);
    const rssBefore = await rssMb(keywarden.proc.pid!);

    const runs: Record<string, Record<'small' | 'one' | 'big', Run[]>> = {};
    for (const [name] of [...targets, [QUIET]]) runs[name!] = { small: [], one: [], big: [] };
    let rssPeak = rssBefore;
    for (let round = 0; round < ROUNDS; round++) {
      for (const [kind, l] of [
        ['small', SMALL],
        ['one', ONE],
        ['big', BIG],
      ] as const) {
        const these: Array<[string, string]> =
          kind === 'small' ? [...targets, [QUIET, `${quiet.url}/proxy/plantid`]] : targets;
        const order = round % 2 === 0 ? these : [...these].reverse();
        for (const [name, base] of order) {
          await load(base, l, LEAD_IN_SEC);
          const r = await load(base, l, SLICE_SEC);
          runs[name]![kind].push(r);
          if (name === 'keywarden') rssPeak = Math.max(rssPeak, await rssMb(keywarden.proc.pid!));
          const failures = r.non2xx || r.errors ? `, ${r.non2xx} non-2xx, ${r.errors} errors` : '';
          const line = `${Math.round(r.rps)} req/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms${failures}`;
          process.stderr.write(`round ${round + 1}/${ROUNDS} ${kind} ${name}: ${line}\n`);
        }
      }
    }
    const rssAfter = await rssMb(keywarden.proc.pid!);

    const ratio = (kind: 'small' | 'big') =>
      runs.keywarden![kind].map((r, i) => r.rps / runs['pass-through']![kind][i]!.rps);
    const added = (kind: 'small' | 'one') =>
      runs.keywarden![kind].map((r, i) => r.p50Ms - runs['pass-through']![kind][i]!.p50Ms);
    const accessLog = runs.keywarden!.small.map((r, i) => r.rps / runs[QUIET]!.small[i]!.rps);
    const addedMean = runs.keywarden!.one.map((r, i) => r.meanMs - runs['pass-through']!.one[i]!.meanMs);
    const rows = Object.fromEntries(
      targets.map(([name]) => [
        name,
        { small: medianRun(runs[name]!.small), one: medianRun(runs[name]!.one), big: medianRun(runs[name]!.big) },
      ]),
    );
    const results = {
      date: new Date().toISOString(),
      machine:
        `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ` +
        `${process.version}`,
      rounds: ROUNDS,
      sliceSec: SLICE_SEC,
      rows,
      ratios: { small: median(ratio('small')), big: median(ratio('big')), accessLog: median(accessLog) },
      intervals: {
        small: medianInterval(ratio('small')),
        big: medianInterval(ratio('big')),
        accessLog: medianInterval(accessLog),
      },
      addedP50Ms: { small: median(added('small')), oneConnection: median(added('one')) },
      addedMeanMsOneConnection: median(addedMean),
      rssMb: { before: rssBefore, peak: rssPeak, after: rssAfter, growth: rssPeak - rssBefore },
      runs,
    };
    const f = (n: number) => n.toFixed(2);
    console.log(`\nKeywarden proxy bench — ${results.date} — ${results.machine}`);
    console.log(
      `${ROUNDS} interleaved rounds of ${SLICE_SEC} s a target after ${LEAD_IN_SEC} s unmeasured; upstream ` +
        `answers at once; medians (ratios: medians of per-round ratios, with their 95% bootstrap interval)\n`,
    );
    console.log(
      '| load | pass-through req/s | keywarden req/s | ratio | pass-through p50 / p99 ms | keywarden p50 / p99 ms |',
    );
    console.log('|---|---|---|---|---|---|');
    for (const [kind, label] of [
      ['small', `small JSON GET, ${CONNECTIONS} connections`],
      ['one', 'small JSON GET, 1 connection'],
      ['big', `1 MB POST bodies, ${CONNECTIONS} connections`],
    ] as const) {
      const p = rows['pass-through']![kind];
      const k = rows.keywarden![kind];
      const r =
        kind === 'one'
          ? f(k.rps / p.rps)
          : `${f(results.ratios[kind])} (${f(results.intervals[kind][0])}-${f(results.intervals[kind][1])})`;
      console.log(
        `| ${label} | ${Math.round(p.rps)} | ${Math.round(k.rps)} | ${r} | ${p.p50Ms} / ${p.p99Ms} | ${k.p50Ms} ` +
          `/ ${k.p99Ms} |`,
      );
    }
    console.log(
      `\nadded latency: p50 ${f(results.addedP50Ms.small)} ms at ${CONNECTIONS} connections; at 1 connection ` +
        `p50 ${f(results.addedP50Ms.oneConnection)} ms, mean ${results.addedMeanMsOneConnection.toFixed(3)} ms; ` +
        `keywarden RSS ${f(rssBefore)} MB before, ${f(rssPeak)} MB at peak (+${f(results.rssMb.growth)} MB)\n`,
    );
    console.log(
      `access log on vs off (LOG_ACCESS=false), small JSON at ${CONNECTIONS} connections: ` +
        `${f(results.ratios.accessLog)} (${f(results.intervals.accessLog[0])}-${f(results.intervals.accessLog[1])}), ` +
        `${Math.round(medianRun(runs[QUIET]!.small).rps)} req/s with it off\n`,
    );
    const targetsMet = {
      [`throughput >= 0.9 x pass-through, small JSON at ${CONNECTIONS} connections`]: results.ratios.small >= 0.9,
      'p50 added latency < 1 ms (1 connection; mean added as well)':
        results.addedP50Ms.oneConnection < 1 && results.addedMeanMsOneConnection < 1,
      [`throughput >= 0.8 x pass-through, 1 MB bodies at ${CONNECTIONS} connections`]: results.ratios.big >= 0.8,
      'RSS growth < 200 MB with 1 MB bodies': results.rssMb.growth < 200,
      'access log on no more than 5% slower than off (small JSON)': results.ratios.accessLog >= 0.95,
    };
    for (const [name, ok] of Object.entries(targetsMet)) console.log(`${ok ? 'met   ' : 'MISSED'} ${name}`);
    await writeFile(
      join(ROOT, 'bench', 'proxy-results.json'),
      `${JSON.stringify({ ...results, targets: targetsMet }, null, 2)}\n`,
    );
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`proxy bench failed: ${(err as Error).message}`);
  process.exit(1);
});
