import type { StateFile } from '../state.js';

/**
 * Produces the whole state file's JSON text in pieces. A store calls it when a write starts (so a
 * coalesced save captures the newest state) and may yield to the event loop between pieces.
 */
export type SnapshotSource = () => Iterable<string>;

export type LoadResult =
  | { kind: 'empty' }
  | { kind: 'loaded'; state: StateFile; dropped: string[] }
  /** The saved state was unreadable; it was moved aside to `movedTo` and the server starts fresh. */
  | { kind: 'quarantined'; movedTo: string; error: string };

/** Where rotation state lives between runs. */
export interface StateStore {
  readonly description: string;
  load(): Promise<LoadResult>;
  /** Saves the state `source` produces. Writes are coalesced: saves asked for during a write share the next one. */
  save(source: SnapshotSource): Promise<void>;
  /** Resolves once every save requested so far is on disk (or failed). */
  flush(): Promise<void>;
}
