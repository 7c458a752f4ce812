import { readFile } from 'node:fs/promises';
import { appendLine } from '../fs/atomic.js';

/** One admin action as the audit log keeps it. Never a key or a token: keyIds, masked keys, app names. */
export interface AuditEntry {
  /** ISO time. */
  at: string;
  /** The admin app's name, `admin` (ADMIN_TOKEN) or `cli` (an offline CLI edit). */
  actor: string;
  /** What was done: `key.add`, `key.disable`, `app.rotate`, `state.import`, … */
  action: string;
  /** What it was done to: `plantid/3f2a9c0d1e2b`, `app mobile`, … */
  target: string;
  /** `ok`, or the error code it failed with. */
  result: string;
  /** The caller's address; null from the CLI. */
  ip: string | null;
}

/** Reads past this many bytes from the end only (the newest entries): an old log may grow large. */
const READ_TAIL_BYTES = 8 * 1024 * 1024;

/**
 * The audit trail (AUDIT_FILE): one JSON line per admin action, appended and fsynced before the
 * action's answer goes out. Lines a crash tore are skipped when read.
 */
export class AuditLog {
  constructor(readonly path: string) {}

  async append(entry: Omit<AuditEntry, 'at'>, now: number): Promise<void> {
    const line: AuditEntry = { at: new Date(now).toISOString(), ...entry };
    await appendLine(this.path, JSON.stringify(line));
  }

  /** Entries at or after `since` (ms), the newest `limit` of them, oldest first. */
  async read(options: { since?: number; limit: number }): Promise<AuditEntry[]> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    if (text.length > READ_TAIL_BYTES) text = text.slice(text.indexOf('\n', text.length - READ_TAIL_BYTES) + 1);
    const entries: AuditEntry[] = [];
    for (const line of text.split('\n')) {
      if (line === '') continue;
      try {
        const e = JSON.parse(line) as AuditEntry;
        if (typeof e.at !== 'string') continue;
        if (options.since !== undefined && Date.parse(e.at) < options.since) continue;
        entries.push(e);
      } catch {
        // a line torn by a crash mid-append
      }
    }
    return entries.slice(-options.limit);
  }
}
