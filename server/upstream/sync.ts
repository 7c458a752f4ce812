import { Semaphore } from 'async-mutex';
import { RepeatedFailure } from '../../shared/repeats.js';
import type { Logger } from '../../shared/logger.js';
import type { UpstreamCheck } from '../pools/contract.js';
import type { PoolKey, PoolRegistry } from '../pools/registry.js';
import type { UsageChecker } from './checker.js';
import type { KeyCheck } from './screen.js';

/** Checks of one pool in flight at a time: a few, so a big pool never floods the upstream. */
const CONCURRENCY = 4;

export interface SyncDeps {
  registry: PoolRegistry;
  /** Asks the pools' upstreams. */
  checker: UsageChecker;
  logger: Logger;
  /** Between rounds; 0: no rounds (checks on demand still work). */
  intervalMs: number;
  /**
   * Takes this instance's turn at a pool's round (the state backend's claim): instances sharing state
   * sync one at a time.
   */
  claim: (job: string, ttlMs: number) => Promise<boolean>;
}

/**
 * The usage sync: every key of every pool with an upstream is checked once at start and then
 * every `intervalMs`, a few at a time, the checks of a round spread over the interval; each
 * answer goes to the pool (a verdict, credits, the pool's upstreamSync). On demand it checks a
 * pool now (`npm run keys -- check`) or a key before it is added.
 */
export class UpstreamSync {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  /**
   * Each pool's upstream outage, logged once when it starts, counted while it lasts (a line a
   * minute) and ended by a round of checks that all got an answer: a pool whose keys answer
   * differently makes one outage, not a line per key.
   */
  private readonly outages = new Map<string, RepeatedFailure>();
  private readonly wakers = new Set<() => void>();

  constructor(private readonly deps: SyncDeps) {}

  /** Whether pool `name` has an upstream to ask. */
  has(name: string): boolean {
    return this.deps.checker.has(name);
  }

  /** Starts the rounds: one now, each key as soon as it can be, then one every interval, spread. */
  start(): void {
    if (this.deps.intervalMs === 0 || this.deps.checker.pools().length === 0) return;
    this.running = this.round(false).finally(() => this.schedule());
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.round(true).finally(() => this.schedule());
    }, this.deps.intervalMs);
    this.timer.unref();
  }

  /**
   * Ends the rounds: a round under way starts no further key, and answers still on their way are
   * not recorded (the caller may cut their connections: see UpstreamAgents.destroy).
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const wake of this.wakers) wake();
    await this.running;
  }

  private async round(spread: boolean): Promise<void> {
    await Promise.all(
      this.deps.checker.pools().map(async (name) => {
        // The lease lasts a little less than the interval, so the next round finds it lapsed.
        if (!(await this.deps.claim(`upstream-sync:${name}`, Math.ceil(this.deps.intervalMs * 0.9)))) return;
        await this.checkKeys(name, this.deps.registry.keysOf(name), spread ? this.deps.intervalMs : 0).catch(
          (err: Error) => {
            this.deps.logger.error(`pool ${name}: upstream sync round failed: ${err.message}`, { pool: name });
          },
        );
      }),
    );
  }

  /** Checks every key of pool `name` now and records the answers; what each key's check said. */
  async checkPool(name: string): Promise<KeyCheck[]> {
    return this.checkKeys(name, this.deps.registry.keysOf(name), 0);
  }

  /** Asks the upstream about a key not (yet) in the pool; records nothing. Null when the pool has no upstream. */
  checkKey(name: string, key: string, keyId: string): Promise<UpstreamCheck | null> {
    return this.deps.checker.checkKey(name, key, keyId);
  }

  private async checkKeys(name: string, keys: readonly PoolKey[], spreadMs: number): Promise<KeyCheck[]> {
    if (!this.has(name)) throw new Error(`pool ${name} has no upstream`);
    const gate = new Semaphore(CONCURRENCY);
    const gapMs = keys.length > 0 ? spreadMs / keys.length : 0;
    const startedAt = performance.now();
    const results: KeyCheck[] = [];
    const all: Array<Promise<void>> = [];
    let unreached = 0;
    for (let i = 0; i < keys.length; i++) {
      if (gapMs > 0) await this.sleep(startedAt + i * gapMs - performance.now());
      if (this.stopped) break;
      const [, release] = await gate.acquire();
      all.push(
        (async () => {
          try {
            const check = (await this.deps.checker.checkKey(name, keys[i]!.key, keys[i]!.keyId))!;
            if (!check.reached) unreached++;
            await this.record(name, keys[i]!, check);
            results[i] = { keyId: keys[i]!.keyId, masked: keys[i]!.masked, check };
          } finally {
            release();
          }
        })(),
      );
    }
    await Promise.all(all);
    if (unreached === 0 && !this.stopped && results.length > 0)
      this.outage(name).recovered(`pool ${name}: upstream answers again; sync resumed`, { pool: name });
    return results.filter((r) => r !== undefined);
  }

  private async record(name: string, k: PoolKey, check: UpstreamCheck): Promise<void> {
    if (this.stopped) return; // shutting down: a cut connection is no outage
    if (!check.reached)
      this.outage(name).failed(
        `pool ${name}: upstream sync failed (${check.error}); keys keep their state until it answers`,
        { pool: name },
      );
    if (check.reached && check.ignored)
      this.deps.logger.warn(
        `pool ${name}: key ${k.keyId}: usage_info sent ${check.ignored.join(', ')}, no whole numbers of credits; ` +
          `read as unknown`,
        { pool: name, keyId: k.keyId },
      );
    const recorded = await this.deps.registry.recordUpstream(name, check);
    if (recorded.revived)
      this.deps.logger.info(`pool ${name}: key ${k.keyId} back in rotation: the upstream finds it fine`, {
        pool: name,
        keyId: k.keyId,
      });
  }

  private outage(pool: string): RepeatedFailure {
    let outage = this.outages.get(pool);
    if (!outage) this.outages.set(pool, (outage = new RepeatedFailure(this.deps.logger, 'warn')));
    return outage;
  }

  /** Waits `ms` (a round's spacing), or less if the sync stops. */
  private sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(t);
        this.wakers.delete(wake);
        resolve();
      };
      const t = setTimeout(wake, ms);
      t.unref();
      this.wakers.add(wake);
    });
  }
}
