import type { KeyStats } from '../shared/stats.js';
import type { KeyChange, KeysAdded, KeywardenOps, PoolSummary, StateImported } from '../server/ops/contract.js';
import type { StateExport } from '../server/state/format.js';
import type { CheckRow } from '../server/upstream/screen.js';
import { api, type Target } from './target.js';

/** The use cases through a running server's admin API (http/admin.ts): one request each. */
export class ApiOps implements KeywardenOps {
  constructor(
    private readonly t: Target,
    private readonly doFetch: typeof fetch,
  ) {}

  private call<T>(method: string, path: string, body?: unknown): Promise<T> {
    return api<T>(this.t, this.doFetch, method, path, body);
  }

  async pools(): Promise<PoolSummary[]> {
    return (await this.call<{ pools: PoolSummary[] }>('GET', '/pools')).pools;
  }
  async keys(pool: string): Promise<KeyStats[]> {
    return (await this.call<{ keys: KeyStats[] }>('GET', `/pools/${pool}/keys`)).keys;
  }
  addKeys(pool: string, keys: string[], force: boolean): Promise<KeysAdded> {
    return this.call('POST', `/pools/${pool}/keys${force ? '?force=true' : ''}`, { keys });
  }
  async checkKeys(pool: string): Promise<CheckRow[]> {
    return (await this.call<{ keys: CheckRow[] }>('POST', `/pools/${pool}/check`)).keys;
  }
  async removeKey(pool: string, keyId: string): Promise<void> {
    await this.call('DELETE', `/pools/${pool}/keys/${keyId}`);
  }
  async changeKey(pool: string, keyId: string, change: KeyChange, reason?: string): Promise<void> {
    await this.call('POST', `/pools/${pool}/keys/${keyId}/${change}`, reason === undefined ? undefined : { reason });
  }
  async clearThrottle(pool: string): Promise<boolean> {
    return (await this.call<{ cleared: boolean }>('POST', `/pools/${pool}/clear-throttle`)).cleared;
  }
  exportState(): Promise<StateExport> {
    return this.call('GET', '/state');
  }
  importState(file: unknown): Promise<StateImported> {
    return this.call('POST', '/state', file);
  }
}
