import type { KeyStats, PoolStats } from '../../shared/stats.js';
import type { StateExport } from '../state/format.js';
import type { CheckRow } from '../upstream/screen.js';
import type { AppView } from '../apps/model.js';
import type { AuditEntry } from '../audit/log.js';
import type { AppPoolStats } from '../../shared/stats.js';

/**
 * Keywarden's use cases for operators, each once: the admin API (and the dashboard through it)
 * and the CLI (through the API, or offline on the files) run these and only these. Two
 * implementations: `Operations` inside a server or an offline CLI, and the CLI's client of the
 * admin API, which reaches a server's `Operations`. Failures are HttpErrors (server/errors.ts):
 * a code, a sentence, and the status the admin API answers with.
 */
export interface KeywardenOps {
  /** Every pool's counts, without its keys. */
  pools(): Promise<PoolSummary[]>;
  /** One pool's keys, masked, with their status. */
  keys(pool: string): Promise<KeyStats[]>;
  /** Adds keys to a pool's key file, after its upstream (if any) accepts them, unless `force`. */
  addKeys(pool: string, keys: string[], force: boolean): Promise<KeysAdded>;
  /** Asks the pool's upstream about every key now, recording the answers. */
  checkKeys(pool: string): Promise<CheckRow[]>;
  /** Removes a key's line from the pool's key file. */
  removeKey(pool: string, keyId: string): Promise<void>;
  /** disable, enable or reset one key (404 when the pool has no such key). */
  changeKey(pool: string, keyId: string, change: KeyChange, reason?: string): Promise<void>;
  /** Lifts a pool-wide throttle; whether one was in force. */
  clearThrottle(pool: string): Promise<boolean>;
  /** Every pool's rotation state, keyIds only, as a state file of the current version. */
  exportState(): Promise<StateExport>;
  /** Replaces the state of the pools a state file names (a parsed JSON value) with its. */
  importState(file: unknown): Promise<StateImported>;

  /** Every app, with what it spent and how its requests went. */
  apps(): Promise<AppReport[]>;
  app(name: string): Promise<AppReport>;
  /** Makes an app from an operator's input (apps/model.ts appInput); its token is shown this once. */
  addApp(input: unknown): Promise<AppReport & { token: string }>;
  /** Changes any of an app's settings but its name (disable and enable among them). */
  updateApp(name: string, patch: unknown): Promise<AppReport>;
  /** A new token for an app; the old one keeps working for `graceSeconds`. */
  rotateApp(name: string, graceSeconds: number): Promise<{ token: string; graceUntil: string | null }>;
  removeApp(name: string): Promise<void>;
  /** The audit trail: entries at or after `since` (ms), the newest `limit`, oldest first. */
  audit(since: number | undefined, limit: number): Promise<AuditEntry[]>;
}

/** What an app spent in a pool (the pool's ledger) and how its requests there went (this instance's). */
export type AppUsageRow = AppPoolStats;

export type AppReport = AppView & { usage: Record<string, AppUsageRow>; lastSeenAt: number | null };

export type PoolSummary = Omit<PoolStats, 'keys'>;
export type KeyChange = 'disable' | 'enable' | 'reset';

export interface KeysAdded {
  pool: string;
  added: Array<{ keyId: string; masked: string }>;
  /** What the upstream said of each key, or null for a pool without one. */
  checked: CheckRow[] | null;
  warnings: string[];
}

export interface StateImported {
  imported: string[];
  /** Pools the file names that are not configured here. */
  skipped: string[];
  /** Entries of the file that could not be read, and were left out. */
  dropped: string[];
}
