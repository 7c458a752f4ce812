import type { PoolState } from '../pool.js';
import type { StateFile } from '../state.js';

export type LoadResult =
  | { kind: 'empty' }
  | { kind: 'loaded'; state: StateFile; dropped: string[] }
  /** The saved state was unreadable; it was moved aside to `movedTo` and the server starts fresh. */
  | { kind: 'quarantined'; movedTo: string; error: string };

/** Where rotation state lives between runs. */
export interface StateStore {
  readonly description: string;
  load(): Promise<LoadResult>;
  /** Saves a snapshot. Writes are coalesced: only the newest pending snapshot is written. */
  save(pools: Record<string, PoolState>, savedAt: number): Promise<void>;
  /** Resolves once every save requested so far is on disk (or failed). */
  flush(): Promise<void>;
}
