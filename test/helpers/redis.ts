import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { RedisBackend } from '../../server/redis/backend.js';
import type { Logger } from '../../shared/logger.js';
import { freePort } from './net.js';

/** Where redis-server is, or null (tests then skip outside CI, and fail in CI). */
export function redisServerBinary(): string | null {
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null;
}

export const REDIS_MISSING = 'redis-server is not installed: apt-get install redis-server (CI installs it)';

/**
 * A Redis suite's `skip`: false where redis-server is installed, and in CI (where a missing one
 * makes the suite fail instead of passing unseen); elsewhere why it cannot run.
 */
export const REDIS_SKIP: string | false =
  redisServerBinary() !== null || process.env.CI === 'true' ? false : REDIS_MISSING;

/**
 * A real redis-server on an ephemeral loopback port, with an append-only file fsynced on every
 * write (so a restart keeps everything acknowledged). `stop` + `start` restarts it on the same
 * port and data.
 */
export class TestRedis {
  /** With `volatile`, no append-only file and no snapshots: a restart forgets everything. `args`: more flags. */
  constructor(private readonly opts: { volatile?: boolean; args?: string[] } = {}) {}

  proc: ChildProcess | null = null;
  port = 0;
  dir = '';

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const bin = redisServerBinary();
    if (!bin) throw new Error(REDIS_MISSING);
    if (!this.dir) this.dir = await mkdtemp(join(tmpdir(), 'keywarden-redis-'));
    if (!this.port) this.port = await freePort();
    const persistence = this.opts.volatile
      ? ['--appendonly', 'no']
      : ['--appendonly', 'yes', '--appendfsync', 'always'];
    this.proc = spawn(
      bin,
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        ...persistence,
        '--dir',
        this.dir,
        '--protected-mode',
        'no',
        '--loglevel',
        'warning',
        ...(this.opts.args ?? []),
      ],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 10_000;
    for (;;) {
      const c = new Redis(this.url, {
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        enableOfflineQueue: false,
        retryStrategy: () => null,
      });
      c.on('error', () => {}); // refused while starting: expected
      try {
        await c.connect();
        if ((await c.ping()) === 'PONG') {
          c.disconnect();
          return;
        }
      } catch {
        // not up yet
      }
      c.disconnect();
      if (Date.now() > deadline) throw new Error('redis-server did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill(signal);
    });
    this.proc = null;
  }

  async destroy(): Promise<void> {
    await this.stop('SIGKILL');
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * A Redis Cluster of three masters on loopback (`redis-server --cluster-enabled yes`, joined by
 * `redis-cli --cluster create`), each with its append-only file; `nodes` are its seeds.
 */
export class TestRedisCluster {
  readonly servers = [0, 1, 2].map(
    () => new TestRedis({ args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf'] }),
  );

  get nodes(): Array<{ host: string; port: number }> {
    return this.servers.map((s) => ({ host: '127.0.0.1', port: s.port }));
  }

  async start(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.start()));
    const made = spawnSync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...this.nodes.map((n) => `${n.host}:${n.port}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    if (made.status !== 0) throw new Error(`redis-cli --cluster create failed: ${made.stdout}${made.stderr}`);
    // Every node agrees the cluster is whole before a test uses it.
    const deadline = Date.now() + 15_000;
    for (const n of this.nodes) {
      for (;;) {
        const c = new Redis(n.port, n.host, { lazyConnect: true, maxRetriesPerRequest: 0 });
        c.on('error', () => {});
        const info = await c
          .connect()
          .then(() => c.cluster('INFO'))
          .catch(() => '');
        c.disconnect();
        if (String(info).includes('cluster_state:ok')) break;
        if (Date.now() > deadline) throw new Error('the Redis Cluster did not come up');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  async destroy(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.destroy()));
  }
}

/**
 * The backend a server in this process gets on `redis` under `prefix` (its own connection, a
 * Redis that persists), for startInProcess's `backend`.
 */
export function redisBackendOn(redis: TestRedis, prefix: string, clock: () => number = Date.now) {
  return (logger: Logger) =>
    new RedisBackend(new Redis(redis.url), prefix, {
      logger,
      url: redis.url,
      clock,
      allowVolatile: false,
      leases: true,
    });
}
