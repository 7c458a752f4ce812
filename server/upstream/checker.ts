import type { UpstreamCheck } from '../pools/contract.js';
import type { Clock } from '../pools/registry.js';
import type { KindwiseUpstream } from './config.js';
import { readUsageAnswer } from './kindwise.js';
import type { UsageFetcher } from './usage-client.js';

/** Asks a pool's upstream about one key and reads the answer; records nothing. */
export class UsageChecker {
  constructor(
    private readonly deps: {
      /** The pools whose upstream tells each key's usage (Kindwise), and where it is. */
      upstreams: ReadonlyMap<string, KindwiseUpstream>;
      fetchUsage: UsageFetcher;
      clock: Clock;
      /** Each check's duration and whether it reached the upstream (metrics). */
      onCheck?: (pool: string, seconds: number, reached: boolean) => void;
      /** What a key has served in all, read just before it is asked about (null: not in the pool yet). */
      servedOf?: (pool: string, keyId: string) => Promise<number | null>;
    },
  ) {}

  /** Whether pool `name` has an upstream to ask. */
  has(name: string): boolean {
    return this.deps.upstreams.has(name);
  }

  /** The pools with an upstream. */
  pools(): string[] {
    return [...this.deps.upstreams.keys()];
  }

  /** What the upstream of pool `name` says of `key`; null when the pool has none. */
  async checkKey(name: string, key: string, keyId: string): Promise<UpstreamCheck | null> {
    const upstream = this.deps.upstreams.get(name);
    if (!upstream) return null;
    const servedBefore = (await this.deps.servedOf?.(name, keyId).catch(() => null)) ?? null;
    const started = performance.now();
    const answer = await this.deps.fetchUsage(upstream, key);
    const check = readUsageAnswer(keyId, answer, this.deps.clock());
    this.deps.onCheck?.(name, (performance.now() - started) / 1000, check.reached);
    return check.reached && servedBefore !== null ? { ...check, servedBefore } : check;
  }
}
