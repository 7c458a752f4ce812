import type { StateFile } from './format.js';

/**
 * What to save, pulled when the write starts (so a coalesced save captures the newest state).
 * Both give JSON text in pieces; a store may let the event loop run between pieces.
 */
export interface SavePlan {
  /** The whole state file. */
  full(): Iterable<string>;
  /** A journal entry with only what changed since the last save, or null when only a full save will do. */
  delta(): Iterable<string> | null;
  /** Called once what this plan wrote is on disk. */
  committed?(): void;
}

export type LoadResult =
  /** Nothing saved yet; `note` when that is a surprise (an empty file where state was expected). */
  | { kind: 'empty'; note?: string }
  | { kind: 'loaded'; state: StateFile; dropped: string[] }
  /**
   * The saved state was unreadable (or `foreign`: another program's); it was moved aside to
   * `movedTo` and the server starts fresh.
   */
  | { kind: 'quarantined'; movedTo: string; error: string; foreign?: boolean };

/** Where rotation state lives between runs. */
export interface StateStore {
  readonly description: string;
  load(): Promise<LoadResult>;
  /** Saves per the plan. Writes are coalesced: saves asked for during a write share the next one. */
  save(plan: SavePlan): Promise<void>;
  /** Resolves once every save requested so far is on disk (or failed). */
  flush(): Promise<void>;
  /** Where and when the state was moved to another backend (FileStore's `.moved` marker), or null. */
  moved?(): Promise<{ movedTo: string; at: string } | null>;
  /** Forgets that mark: this store is in use again. */
  clearMoved?(): Promise<void>;
}
