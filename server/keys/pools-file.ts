import { join } from 'node:path';
import type { Logger } from '../../shared/logger.js';
import { loadPools, type PoolsConfig } from '../config.js';
import { sameSignature, signatureOf, type FileSignature } from '../fs/signature.js';
import type { PoolRegistry } from '../pools/registry.js';

/** A pool's upstream as pools.json gives it. */
type Upstream = PoolsConfig['upstreams'] extends Map<string, infer U> ? U : never;

/** What changed between two values, field by field, as `a.b old → new` (JSON). */
function changes(before: unknown, after: unknown, path = ''): string[] {
  if (JSON.stringify(before) === JSON.stringify(after)) return [];
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(before) || !isObject(after))
    return [`${path || 'settings'} ${JSON.stringify(before)} → ${JSON.stringify(after)}`];
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].flatMap((k) => changes(before[k], after[k], path ? `${path}.${k}` : k));
}

/**
 * `pools.json` read again while the server runs: polled (a change applies within a second),
 * validated as at start; a valid file applies each pool's changed policy (strategy, limits,
 * windows, failure settings) and upstream, logging what changed; an invalid one keeps what is in
 * force, with one ERROR naming the field (once per version of the file). Pools added or removed
 * take a restart: said so. Each instance reads its own file, as it does the key files.
 */
export class PoolsFile {
  private signature: FileSignature | null = null;
  private badSignature: FileSignature | null = null;
  private timer: NodeJS.Timeout | null = null;
  private checking: Promise<void> | null = null;
  readonly path: string;

  constructor(
    private readonly deps: {
      keysDir: string;
      registry: PoolRegistry;
      logger: Logger;
      /** What is in force: the proxy's maps, changed in place. */
      current: PoolsConfig;
      /** A pool's upstream changed: the usage sync follows (start.ts keeps its map). */
      onUpstream: (name: string, upstream: Upstream | null) => void;
    },
  ) {
    this.path = join(deps.keysDir, 'pools.json');
  }

  async watch(intervalMs: number): Promise<void> {
    this.signature = await signatureOf(this.path).catch(() => null);
    this.timer ??= setInterval(() => {
      this.checking ??= this.poll().finally(() => (this.checking = null));
    }, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.checking;
  }

  private async poll(): Promise<void> {
    const signature = await signatureOf(this.path).catch(() => null);
    if (signature === null || sameSignature(this.signature, signature) || sameSignature(this.badSignature, signature))
      return;
    await this.reload(signature);
  }

  /** Reads the file now and applies it (tests and the poll). */
  async reload(signature: FileSignature | null = null): Promise<void> {
    const { logger, registry, current } = this.deps;
    let next: PoolsConfig;
    try {
      next = await loadPools(this.deps.keysDir);
    } catch (err) {
      this.badSignature = signature;
      logger.error(`${(err as Error).message}; the pools keep the settings in force`);
      return;
    }
    this.signature = signature;
    this.badSignature = null;
    const applied: string[] = [];
    for (const [name, policy] of next.policies) {
      if (!registry.has(name)) {
        logger.warn(`pools.json: pool ${name} is new; it is served after a restart`);
        continue;
      }
      const policyChanged = changes(registry.policyOf(name), policy);
      const said = [
        ...policyChanged,
        ...changes(current.upstreams.get(name) ?? null, next.upstreams.get(name) ?? null).map((c) => `upstream ${c}`),
        ...changes(current.proxyRetryPost.has(name), next.proxyRetryPost.has(name)).map((c) => `proxyRetryPost ${c}`),
      ];
      if (said.length === 0) continue;
      if (policyChanged.length > 0) await registry.applyPolicy(name, policy);
      this.setUpstream(name, next.upstreams.get(name) ?? null, next.proxyRetryPost.has(name));
      applied.push(name);
      logger.info(`pools.json: pool ${name}: ${said.join('; ')}`, { pool: name });
    }
    for (const name of registry.names())
      if (!next.policies.has(name))
        logger.warn(`pools.json: pool ${name} is gone from it; it is served until a restart`);
    if (applied.length === 0) logger.info('pools.json: read again; nothing changed for the pools served');
  }

  private setUpstream(name: string, upstream: Upstream | null, retryPost: boolean): void {
    const { current } = this.deps;
    if (upstream) current.upstreams.set(name, upstream);
    else current.upstreams.delete(name);
    if (retryPost) current.proxyRetryPost.add(name);
    else current.proxyRetryPost.delete(name);
    this.deps.onUpstream(name, upstream);
  }
}
