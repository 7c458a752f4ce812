import { createHash } from 'node:crypto';

/** Stable public identifier of a key: the first 12 hex chars of sha256(key). Safe to log and persist. */
export function keyIdOf(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex').slice(0, 12);
}

/**
 * Masked form for display: first 4 + `…` + last 4. Keys too short for that to hide
 * anything (under 12 chars) show only their last 2.
 */
export function maskKey(key: string): string {
  if (key.length < 12) return `…${key.slice(-2)}`;
  return `${key.slice(0, 4)}…${key.slice(-4)}`;
}
