import { readFile } from 'node:fs/promises';
import { Mutex } from 'async-mutex';
import type { Logger } from '../../shared/logger.js';
import { atomicWrite } from '../fs/atomic.js';
import { sameSignature, signatureOf, type FileSignature } from '../fs/signature.js';
import { appsFileSchema, tokenId, tokenMatches, type App } from './model.js';

/** How often a running server looks for edits of the apps file (a change applies within a second). */
const POLL_MS = 400;

/** The apps file cannot be read as apps: names the file and what is wrong. */
export class AppsFileError extends Error {
  constructor(path: string, detail: string) {
    super(`${path}: ${detail}`);
    this.name = 'AppsFileError';
  }
}

/** Who a presented token is: an app, an app that may not call now (and why), or no app's token. */
export type Resolved =
  | { kind: 'app'; app: App }
  | { kind: 'refused'; app: App; code: 'app_disabled' | 'app_expired'; message: string }
  | { kind: 'none' };

function parse(path: string, text: string): App[] {
  if (text.trim() === '') return [];
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new AppsFileError(path, `not valid JSON (${(err as Error).message})`);
  }
  const parsed = appsFileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new AppsFileError(path, `${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const names = new Set<string>();
  for (const app of parsed.data.apps) {
    if (names.has(app.name)) throw new AppsFileError(path, `app ${app.name} is listed twice`);
    names.add(app.name);
  }
  return parsed.data.apps as App[];
}

/**
 * The apps file (APPS_FILE, `{"version": 1, "apps": [...]}`): read at start, polled for edits
 * (another instance's, the offline CLI's, a hand edit) and applied within a second, edited
 * atomically one edit at a time, each edit on what the file holds then. It holds a salted hash of
 * each token, never a token. A file that stops being valid keeps the apps last read, with one
 * ERROR per bad version of it.
 */
export class AppsFile {
  private list: App[] = [];
  private byTokenId = new Map<string, App>();
  private signature: FileSignature | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly editing = new Mutex();
  private badSignature: FileSignature | null = null;

  constructor(
    readonly path: string,
    private readonly logger?: Logger,
  ) {}

  get apps(): readonly App[] {
    return this.list;
  }

  get(name: string): App | undefined {
    return this.list.find((a) => a.name === name);
  }

  /** Reads the file (a missing one holds no apps); throws AppsFileError for one that is not valid. */
  async load(): Promise<void> {
    const signature = await signatureOf(this.path);
    const text = signature.present ? await readFile(this.path, 'utf8') : '';
    this.use(parse(this.path, text), signature);
  }

  /** Polls for edits until `stop`. */
  watch(): void {
    this.timer ??= setInterval(() => void this.poll(), POLL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async poll(): Promise<void> {
    if (this.editing.isLocked()) return;
    try {
      const signature = await signatureOf(this.path);
      if (sameSignature(this.signature, signature) || sameSignature(this.badSignature, signature)) return;
      const before = this.list.map((a) => a.name).join(', ');
      await this.load();
      this.badSignature = null;
      const after = this.list.map((a) => a.name).join(', ');
      this.logger?.info(
        `apps: reloaded ${this.path} (${this.list.length} apps${after !== before ? `: ${after}` : ''})`,
      );
    } catch (err) {
      this.badSignature = await signatureOf(this.path).catch(() => null);
      this.logger?.error(`apps: ${(err as Error).message}; keeping the ${this.list.length} apps last read`);
    }
  }

  private use(apps: App[], signature: FileSignature): void {
    this.list = apps;
    this.signature = signature;
    this.byTokenId = new Map(apps.flatMap((app) => app.tokens.map((t) => [t.id, app] as const)));
  }

  /**
   * Runs `change` on the apps as the file holds them now and writes what it returns, atomically;
   * one edit at a time. `change` throws to write nothing.
   */
  async edit<T>(change: (apps: App[]) => { apps: App[]; result: T }): Promise<T> {
    return this.editing.runExclusive(async () => {
      await this.load();
      const { apps, result } = change(this.list.map((a) => ({ ...a, tokens: [...a.tokens] })));
      await atomicWrite(this.path, JSON.stringify({ version: 1, apps }, null, 2) + '\n');
      this.use(apps, await signatureOf(this.path));
      return result;
    });
  }

  /** Who `presented` is: an app token checked against its stored hash (and its grace), or none. */
  resolve(presented: string, now: number): Resolved {
    const id = tokenId(presented);
    const app = id === null ? undefined : this.byTokenId.get(id);
    if (!app) return { kind: 'none' };
    const token = app.tokens.find((t) => t.id === id)!;
    if ((token.until !== null && now >= token.until) || !tokenMatches(presented, token)) return { kind: 'none' };
    if (app.disabled) return { kind: 'refused', app, code: 'app_disabled', message: `app ${app.name} is disabled` };
    if (app.expiresAt !== null && now >= app.expiresAt)
      return {
        kind: 'refused',
        app,
        code: 'app_expired',
        message: `app ${app.name} expired at ${new Date(app.expiresAt).toISOString()}`,
      };
    return { kind: 'app', app };
  }
}
