/**
 * Redis mode beside file mode, in one run: a file-mode server; a Redis-mode server that asks
 * Redis for every handout (REDIS_LEASES=false, Redis mode before leased blocks); and one, two and
 * three leasing instances sharing one Redis (3-key pool, no limits). Rounds rotate through the
 * targets in short slices, as the main bench does (this VM's speed drifts by a third within
 * seconds); each row is its median round, each ratio the median of the per-round ratios.
 *
 * Two cores cap what several instances can serve here (the load generator, the instances and
 * Redis share them), so scaling is also measured by CPU: a second slice a round paces each
 * instance at PACED_RPS, reads the instances' CPU time (/proc/<pid>/stat) and Redis's (INFO cpu;
 * its scripts' share from INFO commandstats) and divides by the handouts. N instances on N cores
 * of their own then serve N / (instance CPU a handout), at most 1 / (Redis CPU a handout): that
 * is the capacity column.
 *
 * Alone: `node --import tsx bench/redis-fleet.ts` (BENCH_FLEET_ROUNDS, BENCH_SLICE_SEC, BENCH_LEAD_IN_SEC).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import { TestRedis } from '../test/helpers/redis.js';
import { killOnExit, median, startServer, type Proc } from './lib.js';

const ROUNDS = Number(process.env.BENCH_FLEET_ROUNDS ?? 5);
const SLICE_SEC = Number(process.env.BENCH_SLICE_SEC ?? 2);
const LEAD_IN_SEC = Number(process.env.BENCH_LEAD_IN_SEC ?? 2);
const CONNECTIONS = 50;
/**
 * The paced slices' rate per instance: low enough that three instances, Redis and the load
 * generator fit this machine's two cores, so no process's CPU a handout is inflated by waiting
 * for a core (each instance gets the same load whatever their number).
 */
const PACED_RPS = Number(process.env.BENCH_FLEET_PACED_RPS ?? 2000);
/** Clock ticks a second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const TICKS = 100;

export interface FleetRow {
  target: string;
  instances: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Median of the per-round ratios to file mode's req/s. */
  vsFile: number;
  /** CPU of the instances, all together, a handout (µs). */
  instanceUs: number;
  /** Redis's CPU a handout (µs), and its scripts' part of it (INFO commandstats). */
  redisUs: number;
  scriptUs: number;
  /** Handouts a second N instances on N cores of their own would serve, capped by Redis's CPU. */
  capacity: number;
  non2xx: number;
}

async function cpuSec(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICKS; // utime, stime (fields 14 and 15)
}

async function redisCpu(client: Redis): Promise<{ cpu: number; scripts: number }> {
  const cpu = await client.info('cpu');
  const used = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'mu').exec(cpu)?.[1] ?? 0);
  const stats = await client.info('commandstats');
  let usec = 0;
  for (const m of stats.matchAll(/^cmdstat_(?:evalsha|eval):calls=\d+,usec=(\d+)/gmu)) usec += Number(m[1]);
  return { cpu: used('used_cpu_user') + used('used_cpu_sys'), scripts: usec / 1e6 };
}

interface Slice {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  handouts: number;
  non2xx: number;
  instanceSec: number;
  redisSec: number;
  scriptSec: number;
}

/**
 * One measured slice of `procs` together (connections split between them), after an unmeasured
 * lead-in; `paced`: each at PACED_RPS instead of as fast as they answer.
 */
async function slice(procs: Proc[], client: Redis, paced = false): Promise<Slice> {
  const go = (duration: number) =>
    Promise.all(
      procs.map((p) =>
        autocannon({
          url: `${p.url}/api/plantid`,
          connections: Math.floor(CONNECTIONS / procs.length),
          duration,
          ...(paced ? { overallRate: PACED_RPS } : {}),
        }),
      ),
    );
  await go(LEAD_IN_SEC);
  const cpu0 = await Promise.all(procs.map((p) => cpuSec(p.proc.pid!)));
  const r0 = await redisCpu(client);
  const rs = await go(SLICE_SEC);
  const cpu1 = await Promise.all(procs.map((p) => cpuSec(p.proc.pid!)));
  const r1 = await redisCpu(client);
  const handouts = rs.reduce((s, x) => s + x['2xx'], 0);
  return {
    rps: rs.reduce((s, x) => s + x.requests.total / x.duration, 0),
    p50Ms: Math.max(...rs.map((x) => x.latency.p50)),
    p99Ms: Math.max(...rs.map((x) => x.latency.p99)),
    handouts,
    non2xx: rs.reduce((s, x) => s + x.non2xx, 0),
    instanceSec: cpu1.reduce((s, c, i) => s + c - cpu0[i]!, 0),
    redisSec: r1.cpu - r0.cpu,
    scriptSec: r1.scripts - r0.scripts,
  };
}

export async function redisFleet(log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)) {
  const dir = await mkdtemp(join(tmpdir(), 'keywarden-fleet-'));
  const redis = new TestRedis();
  await redis.start();
  killOnExit(redis.proc);
  const client = new Redis(redis.url);
  const procs: Proc[] = [];
  try {
    const redisEnv = (prefix: string, leases = true) => ({
      STATE_BACKEND: 'redis',
      REDIS_URL: redis.url,
      REDIS_PREFIX: prefix,
      REDIS_LEASES: String(leases),
    });
    const make = async (n: number, env: Record<string, string>) => {
      const made: Proc[] = [];
      for (let i = 0; i < n; i++) made.push(await startServer(dir, 3, env));
      procs.push(...made);
      return made;
    };
    const targets: Array<[string, Proc[]]> = [
      ['file mode, 1 instance', await make(1, {})],
      ['Redis, 1 instance, a script run a handout', await make(1, redisEnv('fleet0:', false))],
      ['Redis, 1 instance, leased blocks', await make(1, redisEnv('fleet1:'))],
      ['Redis, 2 instances, leased blocks', await make(2, redisEnv('fleet2:'))],
      ['Redis, 3 instances, leased blocks', await make(3, redisEnv('fleet3:'))],
    ];
    const slices: Slice[][] = targets.map(() => []);
    const paced: Slice[][] = targets.map(() => []);
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < targets.length; k++) {
        const i = (round + k) % targets.length; // a rotated order each round
        slices[i]!.push(await slice(targets[i]![1], client));
        paced[i]!.push(await slice(targets[i]![1], client, true));
      }
      log(`fleet round ${round + 1}/${ROUNDS}: ${slices.map((s) => Math.round(s.at(-1)!.rps)).join(' / ')} req/s`);
    }
    const file = slices[0]!;
    const rows: FleetRow[] = targets.map(([target, ps], i) => {
      const s = slices[i]!;
      const p = paced[i]!;
      const mid = [...s].sort((a, b) => a.rps - b.rps)[Math.floor(s.length / 2)]!;
      const per = (f: (x: Slice) => number) => median(p.map((x) => (f(x) * 1e6) / Math.max(1, x.handouts)));
      const instanceUs = per((x) => x.instanceSec);
      const redisUs = per((x) => x.redisSec);
      return {
        target,
        instances: ps.length,
        rps: mid.rps,
        p50Ms: mid.p50Ms,
        p99Ms: mid.p99Ms,
        vsFile: median(s.map((x, r) => x.rps / file[r]!.rps)),
        instanceUs,
        redisUs: i === 0 ? 0 : redisUs,
        scriptUs: per((x) => x.scriptSec),
        capacity: Math.min((ps.length * 1e6) / instanceUs, i === 0 ? Infinity : 1e6 / Math.max(redisUs, 1e-9)),
        non2xx: [...s, ...p].reduce((n, x) => n + x.non2xx, 0),
      };
    });
    return rows;
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    client.disconnect();
    await redis.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The issue's goals for Redis mode, met or not. */
export function fleetTargets(rows: FleetRow[]): Record<string, boolean> {
  const [, , one, two, three] = rows as [FleetRow, FleetRow, FleetRow, FleetRow, FleetRow];
  return {
    'Redis mode, 1 instance >= 0.8 x file mode': one.vsFile >= 0.8,
    'Redis CPU per handout <= 10 µs (INFO commandstats)': one.scriptUs <= 10,
    '2 instances on one Redis >= 1.6 x one (CPU a handout)': two.capacity / one.capacity >= 1.6,
    '3 instances on one Redis >= 2.2 x one (CPU a handout)': three.capacity / one.capacity >= 2.2,
  };
}

/** The table docs/benchmarks.md takes. */
export function fleetTable(rows: FleetRow[]): string {
  const one = rows.find((r) => r.target.startsWith('Redis, 1 instance, leased'));
  const out = [
    '| target | req/s | p50 ms | p99 ms | vs file mode | instance CPU µs a handout | Redis CPU µs a handout ' +
      '(scripts) | N instances on N cores (handouts/s) | vs 1 leasing instance |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const vsOne = one && r.target.includes('leased') ? (r.capacity / one.capacity).toFixed(2) : '-';
    out.push(
      `| ${r.target} | ${Math.round(r.rps)} | ${r.p50Ms} | ${r.p99Ms} | ${r.vsFile.toFixed(2)} | ` +
        `${r.instanceUs.toFixed(1)} | ${r.redisUs ? `${r.redisUs.toFixed(1)} (${r.scriptUs.toFixed(1)})` : '-'} | ` +
        `${Math.round(r.capacity)} | ${vsOne} |`,
    );
  }
  return out.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await redisFleet();
  console.log(fleetTable(rows));
  process.exit(0);
}
