import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../shared/env.js';

/** Marks an encrypted key-file token: `enc:v1:` + base64 of nonce (12 bytes), ciphertext, GCM tag (16 bytes). */
export const ENCRYPTED_PREFIX = 'enc:v1:';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Keys encrypted at rest in key files: AES-256-GCM with a random nonce per key, under the 32-byte
 * KEYS_SECRET. A key's keyId stays the hash of its plaintext, so state and stats do not change
 * when a file is encrypted, decrypted or re-encrypted.
 */
export class KeyCipher {
  constructor(private readonly secret: Buffer) {
    if (secret.length !== 32) throw new Error('KeyCipher: the secret must be 32 bytes');
  }

  encrypt(key: string): string {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.secret, nonce);
    const body = Buffer.concat([cipher.update(key, 'utf8'), cipher.final()]);
    return `${ENCRYPTED_PREFIX}${Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64')}`;
  }

  /** The plaintext of an `enc:v1:` token, or null when it does not decrypt with this secret (or is malformed). */
  decrypt(token: string): string | null {
    if (!token.startsWith(ENCRYPTED_PREFIX)) return null;
    const raw = Buffer.from(token.slice(ENCRYPTED_PREFIX.length), 'base64');
    if (raw.length <= NONCE_BYTES + TAG_BYTES) return null;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.secret, raw.subarray(0, NONCE_BYTES));
      decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
      return Buffer.concat([
        decipher.update(raw.subarray(NONCE_BYTES, raw.length - TAG_BYTES)),
        decipher.final(),
      ]).toString('utf8');
    } catch {
      return null;
    }
  }
}

/** A 32-byte secret from its text: 64 hex characters or base64; the error names `name`, never the value. */
export function parseSecret(text: string, name: string): Buffer {
  const value = text.trim();
  const bytes = /^[0-9a-fA-F]{64}$/u.test(value)
    ? Buffer.from(value, 'hex')
    : /^[A-Za-z0-9+/]{42,43}=?$/u.test(value)
      ? Buffer.from(value, 'base64')
      : null;
  if (!bytes || bytes.length !== 32)
    throw new ConfigError(
      `${name}: must be 32 bytes as 64 hex characters or base64 (e.g. from: openssl rand -base64 32)`,
    );
  return bytes;
}

/**
 * The cipher from `<prefix>` or `<prefix>_FILE` (a file holding the secret), or null when neither
 * is set; both set is an error. E.g. prefix KEYS_SECRET, or KEYS_SECRET_NEW for rotate-secret.
 */
export function cipherFromEnv(env: Record<string, string | undefined>, prefix = 'KEYS_SECRET'): KeyCipher | null {
  const inline = env[prefix];
  const file = env[`${prefix}_FILE`];
  if (inline && file) throw new ConfigError(`${prefix}: set either ${prefix} or ${prefix}_FILE, not both`);
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(
        `${prefix}_FILE: ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      );
    }
    return new KeyCipher(parseSecret(text, `${prefix}_FILE (${file})`));
  }
  return inline ? new KeyCipher(parseSecret(inline, prefix)) : null;
}
