import { z } from 'zod';
import type { KeyState, PoolState } from './pool.js';

/** Version of the state file format; bump with a migration when the shape changes. */
export const STATE_VERSION = 1;

export interface StateFile {
  version: number;
  savedAt: number;
  /** Save sequence number: journal entries with a higher one apply on top of this file. */
  seq: number;
  pools: Record<string, PoolState>;
}

/** The file is not a readable Keywarden state at all (as opposed to a few bad entries). */
export class CorruptStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CorruptStateError';
  }
}

const ms = z.number().finite();
const counter = z.object({ start: ms, count: z.number().int().nonnegative() });
const keyIdSchema = z.string().regex(/^[0-9a-f]{12}$/u);
const keyState = z.object({
  windows: z.object({ minute: counter, hour: counter, day: counter, month: counter }).partial(),
  total: z.number().int().nonnegative(),
  lastUsedAt: ms.nullable(),
  block: z.object({ until: ms, reason: z.string() }).nullable(),
  exhausted: z.object({ until: ms, reason: z.string() }).nullable(),
  disabled: z.object({ reason: z.string(), lineHash: z.string() }).nullable(),
  failures: z.array(ms),
  backoffLevel: z.number().int().nonnegative(),
  probe: z.union([z.literal('ready'), ms]).nullable(),
  removedAt: ms.optional(),
});
const poolHeader = z.object({
  current: keyIdSchema.nullable(),
  servedInTurn: z.number().int().nonnegative(),
  poolWindow: counter.nullable(),
  throttle: z.object({ until: ms, reason: z.string() }).nullable(),
  history: z.array(counter).default([]),
  keys: z.record(z.string(), z.unknown()),
});
const fileHeader = z.object({
  version: z.number().int(),
  savedAt: ms,
  seq: z.number().int().nonnegative().default(0),
  pools: z.record(z.string(), z.unknown()),
});

function issueText(error: z.ZodError): string {
  const first = error.issues[0];
  return first ? `${first.path.join('.') || '(root)'}: ${first.message}` : 'invalid';
}

/**
 * Applies a journal entry (same shape as a state file, holding only the keys that changed) over
 * a state: pool headers are replaced, keys merged.
 */
export function applyJournalEntry(base: StateFile, entry: StateFile): StateFile {
  const pools = { ...base.pools };
  for (const [name, p] of Object.entries(entry.pools)) {
    const prior = pools[name];
    pools[name] = prior ? { ...p, keys: { ...prior.keys, ...p.keys } } : p;
  }
  return { version: base.version, savedAt: entry.savedAt, seq: entry.seq, pools };
}

/** Serialises state; the result holds keyIds and counters only, never a key. */
export function serializeState(pools: Record<string, PoolState>, savedAt: number): string {
  const file: StateFile = { version: STATE_VERSION, savedAt, seq: 0, pools };
  return JSON.stringify(file);
}

/**
 * Parses a state file. Throws CorruptStateError when the file as a whole is unusable; a bad pool
 * or key entry is dropped and reported in `dropped` instead, so one bad entry costs only itself.
 */
export function deserializeState(text: string): { state: StateFile; dropped: string[] } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new CorruptStateError(`not valid JSON (${(err as Error).message})`);
  }
  const header = fileHeader.safeParse(raw);
  if (!header.success) throw new CorruptStateError(`not a Keywarden state file (${issueText(header.error)})`);
  if (header.data.version !== STATE_VERSION) {
    throw new CorruptStateError(`unsupported state version ${header.data.version} (this server reads ${STATE_VERSION})`);
  }
  const dropped: string[] = [];
  const pools: Record<string, PoolState> = {};
  for (const [name, rawPool] of Object.entries(header.data.pools)) {
    const pool = poolHeader.safeParse(rawPool);
    if (!pool.success) {
      dropped.push(`pool ${name}: ${issueText(pool.error)}`);
      continue;
    }
    const keys: Record<string, KeyState> = {};
    for (const [keyId, rawKey] of Object.entries(pool.data.keys)) {
      if (!keyIdSchema.safeParse(keyId).success) {
        dropped.push(`pool ${name}, key entry ${JSON.stringify(keyId.slice(0, 16))}: not a keyId`);
        continue;
      }
      const key = keyState.safeParse(rawKey);
      if (!key.success) {
        dropped.push(`pool ${name}, key ${keyId}: ${issueText(key.error)}`);
        continue;
      }
      keys[keyId] = key.data as KeyState;
    }
    pools[name] = { ...pool.data, keys };
  }
  return { state: { version: header.data.version, savedAt: header.data.savedAt, seq: header.data.seq, pools }, dropped };
}
