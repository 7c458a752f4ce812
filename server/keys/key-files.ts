import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Mutex } from 'async-mutex';
import { ConfigError } from '../../shared/env.js';
import type { Logger } from '../../shared/logger.js';
import type { PoolRegistry } from '../pools/registry.js';
import type { KeyCipher } from './cipher.js';
import { parseKeyFile } from './keyfile.js';
import { sameSignature, signatureOf, type FileSignature } from '../fs/signature.js';

/** A key file at start-up with encrypted lines that cannot be read: names the file and line, never a key. */
export class KeyFileError extends ConfigError {
  constructor(message: string) {
    super(message);
    this.name = 'KeyFileError';
  }
}

/**
 * The pools' key files, `<keysDir>/<pool>.txt`: read and applied to the registry, polled for
 * edits (stat only, unless one changed) so they apply without a restart, and edited one at a time
 * per pool (admin API, CLI through the API). A missing file means no keys; a file that cannot be
 * read, or a line that cannot be decrypted later on, keeps the keys already loaded and shows in stats.
 */
export class KeyFiles {
  private readonly signatures = new Map<string, FileSignature>();
  private readonly errors = new Map<string, string>();
  private readonly editing = new Map<string, Mutex>();
  private watchTimer: NodeJS.Timeout | null = null;
  private watching: Promise<void> | null = null;

  /** Decrypts `enc:v1:` lines (KEYS_SECRET); for whoever edits the files too. */
  readonly cipher: KeyCipher | null;

  constructor(
    private readonly deps: { keysDir: string; registry: PoolRegistry; logger: Logger; cipher?: KeyCipher | null },
  ) {
    this.cipher = deps.cipher ?? null;
  }

  /** Where pool `name`'s key file is. */
  pathOf(name: string): string {
    return join(this.deps.keysDir, `${name}.txt`);
  }

  /** (Re)reads a pool's key file and applies it; unless `force`, only when it changed since the last read. */
  async load(name: string, force = false): Promise<void> {
    const { registry, logger: log } = this.deps;
    const path = this.pathOf(name);
    const prior = this.signatures.get(name) ?? null;
    let signature: FileSignature;
    let text = '';
    try {
      signature = await signatureOf(path);
      if (!force && sameSignature(prior, signature)) return;
      if (signature.present) text = await readFile(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      this.trouble(name, `cannot be read (${code})`, `key file ${path} cannot be read (${code})`);
      return;
    }
    const parsed = parseKeyFile(text, this.cipher);
    for (const w of parsed.warnings)
      log.warn(`pool ${name}: ${path} line ${w.line}: ${w.message}`, { pool: name, line: w.line });
    const first = prior === null;
    if (parsed.errors.length > 0) {
      const more = parsed.errors.length > 1 ? ` (and ${parsed.errors.length - 1} more lines)` : '';
      const problem = `${path} line ${parsed.errors[0]!.line} ${parsed.errors[0]!.message}${more}`;
      // At start-up the pool would silently lack keys: stop, naming file and line. Later, keep the keys loaded.
      if (first) throw new KeyFileError(`KEYS_SECRET: ${problem}`);
      this.signatures.set(name, signature);
      this.trouble(name, problem, problem);
      return;
    }
    const file = {
      path,
      present: signature.present,
      keyCount: parsed.keys.length,
      skippedLines: parsed.skippedLines,
      modifiedAt: signature.present ? Math.round(signature.mtimeMs) : null,
      error: null,
    };
    // Not applied (the state backend is down): the next poll tries again.
    const summary = await registry.applyKeyFile(name, parsed.keys, file);
    this.signatures.set(name, signature);
    this.errors.delete(name);
    if (!signature.present) {
      log.warn(`pool ${name}: no key file at ${path}; add one key per line to serve this pool`, { pool: name });
    } else if (parsed.keys.length === 0) {
      log.warn(`pool ${name}: ${path} holds no keys; add one key per line to serve this pool`, { pool: name });
    }
    if (first) {
      log.info(`pool ${name}: loaded ${parsed.keys.length} keys from ${path}`, {
        pool: name,
        keys: parsed.keys.length,
        skipped: parsed.skippedLines,
      });
    } else {
      const reenabled = summary.reenabled ? `, ${summary.reenabled} re-enabled` : '';
      log.info(
        `pool ${name}: reloaded ${path}: ${summary.added} added, ${summary.removed} removed, ${summary.kept} ` +
          `kept${reenabled}`,
        { pool: name, ...summary },
      );
    }
  }

  /** A file that cannot be applied: stats say why, and the log says so once while it lasts. */
  private trouble(name: string, error: string, logged: string): void {
    if (this.errors.get(name) !== error) {
      this.deps.logger.error(
        `pool ${name}: ${logged}; keeping the ${this.deps.registry.sizeOf(name)} keys already loaded`,
        { pool: name },
      );
    }
    this.errors.set(name, error);
    this.deps.registry.keyFileTrouble(name, error);
  }

  /** Every pool's key file, read and applied now. */
  async loadAll(): Promise<void> {
    for (const name of this.deps.registry.names()) await this.load(name, true);
  }

  /** Polls the key files every `intervalMs` so edits apply without a restart. */
  watch(intervalMs: number): void {
    if (this.watchTimer) return;
    this.watchTimer = setInterval(() => {
      if (this.watching) return; // a slow read never stacks another
      this.watching = (async () => {
        for (const name of this.deps.registry.names()) {
          try {
            await this.load(name);
          } catch (err) {
            this.deps.logger.error(`pool ${name}: reloading key file failed: ${(err as Error).message}`, {
              pool: name,
            });
          }
        }
      })().finally(() => {
        this.watching = null;
      });
    }, intervalMs);
    this.watchTimer.unref();
  }

  async stopWatching(): Promise<void> {
    if (this.watchTimer) clearInterval(this.watchTimer);
    this.watchTimer = null;
    await this.watching;
  }

  /** Runs an edit of the pool's key file, one at a time per pool, then applies the file at once. */
  edit<T>(name: string, edit: (path: string) => Promise<T>): Promise<T> {
    let mutex = this.editing.get(name);
    if (!mutex) this.editing.set(name, (mutex = new Mutex()));
    return mutex.runExclusive(async () => {
      try {
        return await edit(this.pathOf(name));
      } finally {
        await this.load(name, true);
      }
    });
  }
}
