import { request } from 'undici';
import type { Logger } from '../../shared/logger.js';
import type { Severity } from './conditions.js';

/** One alert event as every channel gets it (the JSON format's body). */
export interface AlertEvent {
  /** `key_invalid`, `pool_low`, …; `<kind>.resolved` when it ends, `<kind>.reminder` while it lasts. */
  event: string;
  severity: Severity;
  pool: string | null;
  keyId?: string;
  masked?: string;
  app?: string;
  message: string;
  /** ISO time. */
  at: string;
  dashboardUrl?: string;
}

export type WebhookFormat = 'json' | 'slack' | 'discord';

export interface WebhookTarget {
  url: string;
  format: WebhookFormat;
  /** The URL without its query and secrets, for logs and metrics. */
  label: string;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/u;

/**
 * ALERT_WEBHOOKS, read: each URL https (or http on loopback), its format from `?format=` (which is
 * taken off the URL) or its host (Slack's and Discord's webhook hosts), else JSON. Throws naming
 * the URL's host for one it cannot take.
 */
export function parseWebhooks(urls: readonly string[]): WebhookTarget[] {
  return urls.map((raw) => {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw new Error(`ALERT_WEBHOOKS: ${JSON.stringify(raw.slice(0, 40))} is not a URL`);
    }
    if (u.protocol !== 'https:' && !(u.protocol === 'http:' && LOOPBACK.test(u.hostname)))
      throw new Error(`ALERT_WEBHOOKS: ${u.protocol}//${u.host} must be https (http only on loopback)`);
    const asked = u.searchParams.get('format');
    if (asked !== null && asked !== 'json' && asked !== 'slack' && asked !== 'discord')
      throw new Error(`ALERT_WEBHOOKS: ${u.host}: format must be json, slack or discord`);
    u.searchParams.delete('format');
    const format: WebhookFormat =
      (asked as WebhookFormat | null) ??
      (u.hostname === 'hooks.slack.com'
        ? 'slack'
        : /(^|\.)discord(app)?\.com$/u.test(u.hostname) && u.pathname.startsWith('/api/webhooks/')
          ? 'discord'
          : 'json');
    return { url: u.toString(), format, label: `${u.protocol}//${u.host}` };
  });
}

const COLORS: Record<Severity, number> = { critical: 0xe74c3c, warning: 0xf1c40f, info: 0x2ecc71 };
const ICONS: Record<Severity, string> = { critical: ':red_circle:', warning: ':warning:', info: ':white_check_mark:' };

/** The body a target gets: the event itself, or Slack's and Discord's incoming-webhook shapes. */
export function webhookBody(format: WebhookFormat, e: AlertEvent): unknown {
  const link = e.dashboardUrl ? ` (${e.dashboardUrl})` : '';
  if (format === 'slack') {
    // https://api.slack.com/messaging/webhooks: `text` (the fallback and notification), blocks to lay it out.
    const text = `${ICONS[e.severity]} *Keywarden* ${e.event}: ${e.message}`;
    return {
      text: `${text}${link}`,
      blocks: [
        { type: 'section', text: { type: 'mrkdwn', text } },
        { type: 'context', elements: [{ type: 'mrkdwn', text: `${e.at}${link}` }] },
      ],
    };
  }
  if (format === 'discord') {
    // https://discord.com/developers/docs/resources/webhook#execute-webhook: content or embeds.
    return {
      username: 'Keywarden',
      allowed_mentions: { parse: [] },
      embeds: [
        {
          title: e.event,
          description: e.message.slice(0, 4096),
          color: COLORS[e.severity],
          timestamp: e.at,
          ...(e.dashboardUrl ? { url: e.dashboardUrl } : {}),
          ...(e.pool ? { footer: { text: `pool ${e.pool}` } } : {}),
        },
      ],
    };
  }
  return e;
}

/** What the sender counts (metrics). */
export interface WebhookMetrics {
  delivered(target: string): void;
  failed(target: string): void;
  dropped(target: string): void;
}

/**
 * Sends alert events to the webhooks, never in a request's way: `send` only queues. Each target
 * has its own queue (bounded: the oldest go first when it is full) and sends in order, one at a
 * time; a failure (no answer, a non-2xx) is retried with a backoff doubling up to `maxBackoffMs`,
 * so a receiver that was down gets what it missed when it comes back.
 */
export class WebhookSender {
  private readonly queues = new Map<WebhookTarget, AlertEvent[]>();
  private readonly running = new Set<WebhookTarget>();
  private stopped = false;
  private readonly wake = new Set<() => void>();

  constructor(
    private readonly targets: readonly WebhookTarget[],
    private readonly deps: {
      logger: Logger;
      metrics?: WebhookMetrics;
      maxQueue?: number;
      maxBackoffMs?: number;
      timeoutMs?: number;
    },
  ) {
    for (const t of targets) this.queues.set(t, []);
  }

  send(e: AlertEvent): void {
    if (this.stopped) return;
    for (const t of this.targets) {
      const q = this.queues.get(t)!;
      if (q.length >= (this.deps.maxQueue ?? 1000)) {
        q.shift();
        this.deps.metrics?.dropped(t.label);
      }
      q.push(e);
      if (!this.running.has(t)) void this.drain(t);
    }
  }

  /** Stops sending; what is queued is dropped (logged). */
  stop(): void {
    this.stopped = true;
    for (const w of this.wake) w();
    for (const [t, q] of this.queues)
      if (q.length > 0) this.deps.logger.warn(`alerts: ${q.length} event(s) for ${t.label} not sent (stopping)`);
  }

  private async drain(t: WebhookTarget): Promise<void> {
    this.running.add(t);
    const q = this.queues.get(t)!;
    let backoff = 1000;
    let failing = false;
    while (q.length > 0 && !this.stopped) {
      const e = q[0]!;
      const error = await this.post(t, e);
      if (error === null) {
        q.shift();
        backoff = 1000;
        if (failing) this.deps.logger.info(`alerts: ${t.label} takes events again`);
        failing = false;
        this.deps.metrics?.delivered(t.label);
        continue;
      }
      this.deps.metrics?.failed(t.label);
      if (!failing) this.deps.logger.warn(`alerts: sending to ${t.label} failed (${error}); retrying with backoff`);
      failing = true;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.wake.delete(done);
          resolve();
        };
        const timer = setTimeout(done, backoff);
        timer.unref();
        this.wake.add(done);
      });
      backoff = Math.min(backoff * 2, this.deps.maxBackoffMs ?? 60_000);
    }
    this.running.delete(t);
  }

  /** One delivery: null when the receiver took it, else why not. */
  private async post(t: WebhookTarget, e: AlertEvent): Promise<string | null> {
    const timeout = this.deps.timeoutMs ?? 10_000;
    try {
      const res = await request(t.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'keywarden-alerts' },
        body: JSON.stringify(webhookBody(t.format, e)),
        headersTimeout: timeout,
        bodyTimeout: timeout,
      });
      await res.body.dump();
      return res.statusCode >= 200 && res.statusCode < 300 ? null : `HTTP ${res.statusCode}`;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    }
  }
}
