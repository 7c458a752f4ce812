import { randomBytes } from 'node:crypto';
import type { KeyLine } from '../../server/keys/keyfile.js';
import { parseKeyFile } from '../../server/keys/keyfile.js';

/** Distinct realistic-looking keys (48 chars, like Kindwise keys). */
export function makeKeys(n: number, tag = 'k'): string[] {
  return Array.from({ length: n }, (_, i) =>
    `${tag}${i.toString(36).padStart(5, '0')}${randomBytes(21).toString('hex')}`.slice(0, 48),
  );
}

export function lines(keys: readonly string[]): KeyLine[] {
  return parseKeyFile(keys.join('\n')).keys;
}
