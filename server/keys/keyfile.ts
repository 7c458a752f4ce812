import { createHash } from 'node:crypto';
import { ENCRYPTED_PREFIX, type KeyCipher } from './cipher.js';

import type { KeyLine } from '../pools/contract.js';

export type { KeyLine };

export interface KeyFileWarning {
  line: number;
  message: string;
}

export interface ParsedKeyFile {
  keys: KeyLine[];
  warnings: KeyFileWarning[];
  /** Encrypted lines that cannot be read (no secret, or not this secret): the file must not be applied. */
  errors: KeyFileWarning[];
  /** Lines that looked like keys but were not used (invalid or duplicate). */
  skippedLines: number;
}

// Control characters (C0, DEL, C1) and Unicode whitespace that would make a key unusable in a header.
// eslint-disable-next-line no-control-regex -- control characters are what this finds
const BAD_CHAR = /[\u0000-\u001f\u007f-\u009f\s\u200b\u2028\u2029\ufeff]/u;
const INLINE_COMMENT = /^(\S+)\s+#(.*)$/u;
const EXPIRES = /(?:^|\s)expires=(\S+)/u;

function parseExpiry(raw: string): number | null | 'bad' {
  const m = EXPIRES.exec(raw);
  if (!m) return null;
  const value = m[1]!;
  // A bare date means the key stops at the end of that day, UTC.
  const dateOnly = /^\d{4}-\d{2}-\d{2}$/u.test(value);
  const ms = Date.parse(dateOnly ? `${value}T23:59:59.999Z` : value);
  return Number.isFinite(ms) ? ms : 'bad';
}

/** What one line of a key file holds. */
export type LineContent =
  | { kind: 'blank' }
  | { kind: 'key'; key: string; lineHash: string; expiresAt: number | null; encrypted: boolean }
  | { kind: 'bad'; message: string }
  /** An encrypted key that cannot be read: never skipped quietly, since the pool would lose it. */
  | { kind: 'locked'; message: string };

/**
 * True when `key` could stand alone on a key-file line: non-empty, no whitespace or control
 * characters, not a comment.
 */
export function isValidKey(key: string): boolean {
  return key.length > 0 && !key.startsWith('#') && !BAD_CHAR.test(key);
}

/**
 * Reads one line (without its line end); an `enc:v1:` token is decrypted with `cipher`. Messages
 * never contain the key. The line hash is of the line as its plaintext reads, so encrypting or
 * re-encrypting a file does not count as a changed line.
 */
export function parseLine(raw: string, cipher: KeyCipher | null = null): LineContent {
  let trimmed = raw.trim();
  if (trimmed === '' || trimmed.startsWith('#')) return { kind: 'blank' };
  let key = trimmed;
  let comment = '';
  const inline = INLINE_COMMENT.exec(trimmed);
  if (inline) {
    key = inline[1]!;
    comment = inline[2]!;
  }
  const encrypted = key.startsWith(ENCRYPTED_PREFIX);
  if (encrypted) {
    if (!cipher) return { kind: 'locked', message: 'holds an encrypted key (enc:v1) but no KEYS_SECRET is set' };
    const plain = cipher.decrypt(key);
    if (plain === null)
      return { kind: 'locked', message: 'holds an encrypted key (enc:v1) that does not decrypt with KEYS_SECRET' };
    trimmed = `${plain}${trimmed.slice(key.length)}`;
    key = plain;
  }
  if (BAD_CHAR.test(key) || (!inline && BAD_CHAR.test(trimmed)))
    return { kind: 'bad', message: 'skipped: contains whitespace or control characters' };
  const expiresAt = parseExpiry(comment);
  if (expiresAt === 'bad')
    return { kind: 'bad', message: 'skipped: expires= is not a valid date (use YYYY-MM-DD or an ISO 8601 time)' };
  const lineHash = createHash('sha256').update(trimmed, 'utf8').digest('hex').slice(0, 16);
  return { kind: 'key', key, lineHash, expiresAt, encrypted };
}

/** Splits file text into lines: BOM dropped, CRLF, LF and CR all end a line. */
export function splitLines(text: string): string[] {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  return body.split(/\r?\n|\r/u);
}

/**
 * Parses a key file: one key per line, whitespace trimmed, blank lines and `#` comments ignored,
 * CRLF and a UTF-8 BOM tolerated. A key may carry an inline comment after whitespace
 * (`KEY  # expires=2027-01-31`). Duplicates count once; lines with inner whitespace or control
 * characters are skipped. Warnings name line numbers and never contain a key.
 */
export function parseKeyFile(text: string, cipher: KeyCipher | null = null): ParsedKeyFile {
  const keys: KeyLine[] = [];
  const warnings: KeyFileWarning[] = [];
  const errors: KeyFileWarning[] = [];
  const firstLineOf = new Map<string, number>();
  let skippedLines = 0;
  const lines = splitLines(text);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const content = parseLine(lines[i]!, cipher);
    if (content.kind === 'blank') continue;
    if (content.kind === 'locked') {
      errors.push({ line: lineNo, message: content.message });
      continue;
    }
    if (content.kind === 'bad') {
      skippedLines++;
      warnings.push({ line: lineNo, message: content.message });
      continue;
    }
    const first = firstLineOf.get(content.key);
    if (first !== undefined) {
      skippedLines++;
      warnings.push({ line: lineNo, message: `duplicate of line ${first}; counted once` });
      continue;
    }
    firstLineOf.set(content.key, lineNo);
    keys.push({ key: content.key, line: lineNo, lineHash: content.lineHash, expiresAt: content.expiresAt });
  }
  return { keys, warnings, errors, skippedLines };
}
