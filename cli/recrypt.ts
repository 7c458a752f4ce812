import { join } from 'node:path';
import { ConfigError } from '../shared/env.js';
import { loadPools } from '../server/config.js';
import { cipherFromEnv, type KeyCipher } from '../server/keys/cipher.js';
import { KeyEditError, recryptKeyFile, type Recrypt } from '../server/keys/keyedit.js';
import { CliError } from './errors.js';
import { poolArg, type CliDeps, type Target } from './target.js';

/**
 * encrypt, decrypt, rotate-secret: rewrite a key file in place (atomically; a running server
 * picks it up like any edit, and after rotate-secret needs the new KEYS_SECRET to read it).
 */
export async function recrypt(
  command: 'encrypt' | 'decrypt' | 'rotate-secret',
  rest: string[],
  t: Target,
  deps: CliDeps,
): Promise<void> {
  const pool = poolArg(rest[0], [...(await loadPools(t.keysDir)).policies.keys()]);
  const path = join(t.keysDir, `${pool}.txt`);
  const cipher = t.cipher;
  if (!cipher) throw new CliError(`KEYS_SECRET: set it (or KEYS_SECRET_FILE) to ${command} ${path}`);
  let how: Recrypt;
  if (command === 'rotate-secret') {
    let next: KeyCipher | null;
    try {
      next = cipherFromEnv(deps.env, 'KEYS_SECRET_NEW');
    } catch (err) {
      throw err instanceof ConfigError ? new CliError(err.message) : err;
    }
    if (!next) throw new CliError('KEYS_SECRET_NEW: set the new secret (or KEYS_SECRET_NEW_FILE) to rotate to');
    how = { to: 're-encrypted', cipher, next };
  } else how = command === 'encrypt' ? { to: 'encrypted', cipher } : { to: 'plaintext', cipher };
  let changed: number;
  try {
    changed = await recryptKeyFile(path, how);
  } catch (err) {
    if (err instanceof KeyEditError) throw new CliError(err.message);
    throw err;
  }
  deps.out(
    `${how.to} ${changed} key${changed === 1 ? '' : 's'} in ${path}` +
      (command === 'rotate-secret'
        ? '; now set KEYS_SECRET to the new secret where the server runs, and restart it'
        : ''),
  );
}
