import type { KeyStats } from '../shared/stats.js';
import type {
  AppReport,
  KeyChange,
  KeysAdded,
  KeywardenOps,
  PoolSummary,
  StateImported,
} from '../server/ops/contract.js';
import type { AuditEntry } from '../server/audit/log.js';
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
  async apps(): Promise<AppReport[]> {
    return (await this.call<{ apps: AppReport[] }>('GET', '/apps')).apps;
  }
  app(name: string): Promise<AppReport> {
    return this.call('GET', `/apps/${encodeURIComponent(name)}`);
  }
  addApp(input: unknown): Promise<AppReport & { token: string }> {
    return this.call('POST', '/apps', input);
  }
  updateApp(name: string, patch: unknown): Promise<AppReport> {
    return this.call('PATCH', `/apps/${encodeURIComponent(name)}`, patch);
  }
  rotateApp(name: string, graceSeconds: number): Promise<{ token: string; graceUntil: string | null }> {
    return this.call('POST', `/apps/${encodeURIComponent(name)}/rotate`, { graceSeconds });
  }
  async removeApp(name: string): Promise<void> {
    await this.call('DELETE', `/apps/${encodeURIComponent(name)}`);
  }
  async audit(since: number | undefined, limit: number): Promise<AuditEntry[]> {
    const query = `?limit=${limit}${since === undefined ? '' : `&since=${since}`}`;
    return (await this.call<{ entries: AuditEntry[] }>('GET', `/audit${query}`)).entries;
  }
}
