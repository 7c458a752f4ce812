import { readFile } from 'node:fs/promises';
import { keyIdOf, maskKey } from '../../shared/keys.js';
import { atomicWrite } from '../fs/atomic.js';
import type { KeyCipher } from './cipher.js';
import { isValidKey, parseLine, splitLines } from './keyfile.js';

/** Longest key accepted through the admin API or CLI. */
export const MAX_KEY_LENGTH = 512;

export class KeyEditError extends Error {
  constructor(
    readonly code: 'duplicate_key' | 'invalid_key' | 'unknown_key',
    message: string,
    readonly keyIds: string[] = [],
  ) {
    super(message);
    this.name = 'KeyEditError';
  }
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

function eolOf(text: string): string {
  return text.includes('\r\n') ? '\r\n' : '\n';
}

/** Checks keys about to be added; the message names the position in the batch, never the key. */
export function validateNewKeys(keys: readonly string[]): void {
  keys.forEach((key, i) => {
    if (!isValidKey(key) || key.length > MAX_KEY_LENGTH) {
      throw new KeyEditError(
        'invalid_key',
        `key ${i + 1} of ${keys.length} is not a valid key (1-${MAX_KEY_LENGTH} characters, no whitespace or ` +
          `control characters, not starting with #)`,
      );
    }
  });
}

/**
 * Appends keys to a key file, keeping every existing line (comments, order, line ends) as is;
 * with a cipher (KEYS_SECRET) the new lines are written encrypted. All or nothing: a key already
 * in the file or twice in the batch is a duplicate_key error and nothing is written. The write is
 * atomic.
 */
export async function addKeys(
  path: string,
  keys: readonly string[],
  cipher: KeyCipher | null = null,
): Promise<Array<{ keyId: string; masked: string }>> {
  validateNewKeys(keys);
  const text = await readText(path);
  const existing = new Set<string>();
  for (const line of splitLines(text)) {
    const c = parseLine(line, cipher);
    if (c.kind === 'key') existing.add(c.key);
  }
  const seen = new Set<string>();
  const duplicates: string[] = [];
  for (const key of keys) {
    if (existing.has(key) || seen.has(key)) duplicates.push(keyIdOf(key));
    seen.add(key);
  }
  if (duplicates.length > 0) {
    throw new KeyEditError(
      'duplicate_key',
      `${duplicates.length} of the keys ${duplicates.length === 1 ? 'is' : 'are'} already in the pool ` +
        `(${duplicates.join(', ')})`,
      duplicates,
    );
  }
  const eol = eolOf(text);
  const prefix = text === '' || text.endsWith('\n') || text.endsWith('\r') ? text : `${text}${eol}`;
  const lines = cipher ? keys.map((k) => cipher.encrypt(k)) : keys;
  await atomicWrite(path, `${prefix}${lines.join(eol)}${eol}`);
  return keys.map((key) => ({ keyId: keyIdOf(key), masked: maskKey(key) }));
}

/** Removes every line holding the key with `keyId`, keeping all other lines as they are. */
export async function removeKey(path: string, keyId: string, cipher: KeyCipher | null = null): Promise<void> {
  const text = await readText(path);
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  // Split keeping each line's own ending so the rest of the file is written back byte for byte.
  const parts = body.match(/[^\r\n]*(?:\r\n|\n|\r|$)/gu) ?? [];
  let removed = 0;
  const kept = parts.filter((part) => {
    const c = parseLine(part.replace(/[\r\n]+$/u, ''), cipher);
    if (c.kind === 'key' && keyIdOf(c.key) === keyId) {
      removed++;
      return false;
    }
    return true;
  });
  if (removed === 0) throw new KeyEditError('unknown_key', `no key ${keyId} in ${path}`, [keyId]);
  await atomicWrite(path, `${text.charCodeAt(0) === 0xfeff ? '\ufeff' : ''}${kept.join('')}`);
}

export type Recrypt =
  | { to: 'encrypted'; cipher: KeyCipher }
  | { to: 'plaintext'; cipher: KeyCipher }
  | { to: 're-encrypted'; cipher: KeyCipher; next: KeyCipher };

/**
 * Rewrites a key file with every key encrypted, every key in plaintext, or every encrypted key
 * under a new secret; comments, order, inline comments and line ends stay. Checks every
 * encrypted line decrypts with the current secret first, and writes nothing if one does not
 * (the error names the line). Atomic. Returns how many lines changed.
 */
export async function recryptKeyFile(path: string, how: Recrypt): Promise<number> {
  const text = await readText(path);
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const parts = body.match(/[^\r\n]*(?:\r\n|\n|\r|$)/gu) ?? [];
  let changed = 0;
  const out = parts.map((part, i) => {
    const line = part.replace(/[\r\n]+$/u, '');
    const c = parseLine(line, how.cipher);
    if (c.kind === 'locked')
      throw new KeyEditError('invalid_key', `${path} line ${i + 1} ${c.message}; nothing was written`);
    if (c.kind !== 'key') return part;
    const token = /^\s*(\S+)/u.exec(line)![1]!;
    let next: string;
    if (how.to === 'encrypted') next = c.encrypted ? token : how.cipher.encrypt(c.key);
    else if (how.to === 'plaintext') next = c.key;
    else next = c.encrypted ? how.next.encrypt(c.key) : token;
    if (next === token) return part;
    changed++;
    return part.replace(token, () => next);
  });
  if (changed > 0) await atomicWrite(path, `${text.charCodeAt(0) === 0xfeff ? '\ufeff' : ''}${out.join('')}`);
  return changed;
}
