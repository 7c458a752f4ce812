import type { Logger } from '../../shared/logger.js';
import type { AppStats } from '../../shared/stats.js';
import type { PoolRegistry } from '../pools/registry.js';
import { conditionsOf, resolvedMessage, type AlertSettings, type Condition } from './conditions.js';
import type { AlertEvent } from './webhooks.js';

/** An alert in force, as `GET /api/alerts` lists it. */
export interface ActiveAlert extends Omit<Condition, 'kind'> {
  event: Condition['kind'];
  /** When this instance first saw it (ISO). */
  since: string;
}

export interface AlertEngineOptions extends AlertSettings {
  /** How often everything is looked at (ALERT_CHECK_INTERVAL_MS). */
  intervalMs: number;
  /** A reminder this often while an alert lasts (ALERT_REMIND_HOURS). */
  remindMs: number;
  dashboardUrl: string | null;
}

/**
 * How long an alert event's lease lasts: the instances sharing state each see a change within a
 * check or two, and the first to take the lease sends it (a flap within this window is sent once).
 */
const EVENT_LEASE_MS = 5 * 60_000;

/**
 * The one alert engine, in the server: every `intervalMs` (and soon after a key goes out) it reads
 * what the server knows into conditions (conditions.ts), and each condition's start, end and
 * reminders become events, sent once across instances (a lease per event, through the state
 * backend's `claim`) to `send` (the webhooks). `list` is what is in force now.
 */
export class AlertEngine {
  private readonly active = new Map<string, { condition: Condition; since: number; reminders: number }>();
  private readonly syncFailingSince = new Map<string, number>();
  private saves: { failingSince: number | null; error: string | null } = { failingSince: null, error: null };
  private timer: NodeJS.Timeout | null = null;
  private soon: NodeJS.Timeout | null = null;
  private checking: Promise<void> | null = null;

  constructor(
    private readonly deps: {
      registry: PoolRegistry;
      apps: () => Promise<AppStats[]>;
      claim: (job: string, ttlMs: number) => Promise<boolean>;
      send: (e: AlertEvent) => void;
      logger: Logger;
      clock: () => number;
      options: AlertEngineOptions;
    },
  ) {}

  start(): void {
    this.timer ??= setInterval(() => void this.check(), this.deps.options.intervalMs);
    this.timer.unref();
    void this.check();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.soon) clearTimeout(this.soon);
    this.timer = this.soon = null;
  }

  /** Something changed that may be news (a key went out): look again shortly, once for a burst. */
  poke(): void {
    if (this.soon || !this.timer) return;
    this.soon = setTimeout(() => {
      this.soon = null;
      void this.check();
    }, 250);
    this.soon.unref();
  }

  /** A state save's result (the file backend's saves, and its reservations). */
  saveResult(ok: boolean, now: number): void {
    if (ok) this.saves = { failingSince: null, error: null };
    else
      this.saves = {
        failingSince: this.saves.failingSince ?? now,
        error: 'the last save failed (see the log for why)',
      };
  }

  list(): ActiveAlert[] {
    return [...this.active.values()].map(({ condition: { kind, ...c }, since }) => ({
      event: kind,
      ...c,
      since: new Date(since).toISOString(),
    }));
  }

  /** One look at everything; overlapping calls share it. */
  check(): Promise<void> {
    const running =
      this.checking ??
      this.checkNow()
        .catch((err: Error) => void this.deps.logger.warn(`alerts: a check failed: ${err.message}`))
        .finally(() => (this.checking = null));
    this.checking = running;
    return running;
  }

  private async checkNow(): Promise<void> {
    const { registry, clock, options } = this.deps;
    const now = clock();
    const stats = await registry.stats({ version: '', uptimeSec: 0 }, { keys: 'out' });
    const servedPerMinute = new Map<string, number[]>();
    for (const p of stats.pools) {
      servedPerMinute.set(p.name, (await registry.activitySeries(p.name, '1h')).counts.served);
      const sync = p.upstreamSync;
      if (sync && !sync.ok) {
        if (!this.syncFailingSince.has(p.name)) this.syncFailingSince.set(p.name, sync.at);
      } else this.syncFailingSince.delete(p.name);
    }
    const conditions = conditionsOf(
      {
        now,
        pools: stats.pools,
        servedPerMinute,
        syncFailingSince: this.syncFailingSince,
        saves: this.saves,
        apps: await this.deps.apps(),
      },
      options,
    );
    const seen = new Set<string>();
    for (const c of conditions) {
      seen.add(c.id);
      const held = this.active.get(c.id);
      if (!held) {
        this.active.set(c.id, { condition: c, since: now, reminders: 0 });
        await this.emit(c, '', c.severity, 'start', now);
        continue;
      }
      held.condition = c; // the latest figures
      const due = Math.floor((now - held.since) / options.remindMs);
      if (due > held.reminders) {
        held.reminders = due;
        await this.emit(c, '.reminder', c.severity, `remind${due}`, now);
      }
    }
    for (const [id, held] of this.active) {
      if (seen.has(id)) continue;
      this.active.delete(id);
      await this.emit(held.condition, '.resolved', 'info', 'end', now, resolvedMessage(held.condition));
    }
  }

  /** Sends an event unless another instance took its lease first. */
  private async emit(
    c: Condition,
    suffix: string,
    severity: AlertEvent['severity'],
    phase: string,
    now: number,
    message = c.message,
  ): Promise<void> {
    if (!(await this.deps.claim(`alert:${c.id}:${phase}`, EVENT_LEASE_MS))) return;
    const e: AlertEvent = {
      event: `${c.kind}${suffix}`,
      severity,
      pool: c.pool,
      ...(c.keyId ? { keyId: c.keyId, masked: c.masked } : {}),
      ...(c.app ? { app: c.app } : {}),
      message,
      at: new Date(now).toISOString(),
      ...(this.deps.options.dashboardUrl ? { dashboardUrl: this.deps.options.dashboardUrl } : {}),
    };
    this.deps.logger.log(
      severity === 'critical' ? 'error' : severity === 'warning' ? 'warn' : 'info',
      `alert: ${e.event}: ${e.message}`,
    );
    this.deps.send(e);
  }
}
