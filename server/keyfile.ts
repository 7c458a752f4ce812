import { createHash } from 'node:crypto';

/** One usable line of a key file. `key` is plaintext: it never leaves the pool except in a handout. */
export interface KeyLine {
  key: string;
  /** 1-based line number in the file. */
  line: number;
  /** Hash of the whole trimmed line, so "the key's line changed" can be told without storing it. */
  lineHash: string;
  /** From an inline `# expires=YYYY-MM-DD[THH:MM[:SS]Z]` comment, epoch ms; null when absent. */
  expiresAt: number | null;
}

export interface KeyFileWarning {
  line: number;
  message: string;
}

export interface ParsedKeyFile {
  keys: KeyLine[];
  warnings: KeyFileWarning[];
  /** Lines that looked like keys but were not used (invalid or duplicate). */
  skippedLines: number;
}

// Control characters (C0, DEL, C1) and Unicode whitespace that would make a key unusable in a header.
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

/**
 * Parses a key file: one key per line, whitespace trimmed, blank lines and `#` comments ignored,
 * CRLF and a UTF-8 BOM tolerated. A key may carry an inline comment after whitespace
 * (`KEY  # expires=2027-01-31`). Duplicates count once; lines with inner whitespace or control
 * characters are skipped. Warnings name line numbers and never contain a key.
 */
export function parseKeyFile(text: string): ParsedKeyFile {
  const keys: KeyLine[] = [];
  const warnings: KeyFileWarning[] = [];
  const firstLineOf = new Map<string, number>();
  let skippedLines = 0;
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const lines = body.split(/\r?\n|\r/u);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const trimmed = lines[i]!.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    let key = trimmed;
    let comment = '';
    const inline = INLINE_COMMENT.exec(trimmed);
    if (inline) {
      key = inline[1]!;
      comment = inline[2]!;
    }
    if (BAD_CHAR.test(key) || (!inline && BAD_CHAR.test(trimmed))) {
      skippedLines++;
      warnings.push({ line: lineNo, message: 'skipped: contains whitespace or control characters' });
      continue;
    }
    const expiresAt = parseExpiry(comment);
    if (expiresAt === 'bad') {
      skippedLines++;
      warnings.push({ line: lineNo, message: 'skipped: expires= is not a valid date (use YYYY-MM-DD or an ISO 8601 time)' });
      continue;
    }
    const first = firstLineOf.get(key);
    if (first !== undefined) {
      skippedLines++;
      warnings.push({ line: lineNo, message: `duplicate of line ${first}; counted once` });
      continue;
    }
    firstLineOf.set(key, lineNo);
    const lineHash = createHash('sha256').update(trimmed, 'utf8').digest('hex').slice(0, 16);
    keys.push({ key, line: lineNo, lineHash, expiresAt });
  }
  return { keys, warnings, skippedLines };
}
