import type { APIEmbed, APIEmbedField } from 'discord.js';
import { creditsLeft, type KeyStats, type PoolStats, type ServerAlert, type StatsResponse } from '../shared/stats.js';
import type { Alert } from './alerts.js';
import { COLORS, poolLevel } from './levels.js';

/** Discord limits: 10 embeds a message, 1024 chars a field value, 6000 chars a message. */
const MAX_EMBEDS = 10;
const MAX_FIELD = 1024;
/** Keys listed per pool under "Out of rotation" (and "Credits left") before "… and N more". */
const MAX_OUT_LINES = 8;
const CREDIT_WINDOWS = ['day', 'week', 'month', 'total'] as const;

/** Discord timestamp markup: renders in each reader's time zone. */
export function discordTime(ms: number, style: 'R' | 'f' | 't' = 'R'): string {
  return `<t:${Math.floor(ms / 1000)}:${style}>`;
}

function clip(text: string, max = MAX_FIELD): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function keyLine(k: KeyStats): string {
  const why = k.reason ? `: ${k.reason}` : '';
  const back =
    k.until !== null
      ? `, back ${discordTime(k.until)}`
      : k.status === 'disabled' || k.status === 'expired'
        ? ', until fixed'
        : k.status === 'invalid'
          ? ', until the upstream accepts it'
          : '';
  return `\`${k.masked}\` ${k.status}${why}${back}`;
}

function outOfRotation(pool: PoolStats): APIEmbedField {
  const out = pool.keys.filter((k) => k.status !== 'available');
  const counts = [
    pool.blocked && `${pool.blocked} blocked`,
    pool.exhausted && `${pool.exhausted} exhausted`,
    pool.invalid && `${pool.invalid} invalid`,
    pool.disabled && `${pool.disabled} disabled`,
    pool.expired && `${pool.expired} expired`,
    pool.probing && `${pool.probing} probing`,
  ].filter(Boolean);
  if (counts.length === 0) return { name: 'Out of rotation', value: 'none' };
  const lines = out.slice(0, MAX_OUT_LINES).map(keyLine);
  if (out.length > MAX_OUT_LINES) lines.push(`… and ${out.length - MAX_OUT_LINES} more`);
  return { name: `Out of rotation (${counts.join(', ')})`, value: clip(lines.join('\n') || counts.join(', ')) };
}

/** A key's credits left per window, e.g. `day 88 · total 4960`; null before its first sync. */
function creditsText(k: KeyStats): string | null {
  if (!k.credits) return null;
  const parts = CREDIT_WINDOWS.filter((w) => k.credits!.remaining[w] !== null).map(
    (w) => `${w} ${k.credits!.remaining[w]}`,
  );
  return parts.length > 0 ? parts.join(' · ') : 'no limit';
}

/** Credits left per key (fewest first), for a pool whose upstream is synced; null for a pool without. */
function creditsField(pool: PoolStats): APIEmbedField | null {
  if (pool.upstreamSync === null && pool.creditsRemaining === null) return null;
  const least = (k: KeyStats) => creditsLeft(k.credits) ?? Infinity;
  const synced = pool.keys.filter((k) => k.credits !== null).sort((a, b) => least(a) - least(b));
  const lines = synced.slice(0, MAX_OUT_LINES).map((k) => `\`${k.masked}\` ${creditsText(k)}`);
  if (synced.length > MAX_OUT_LINES) lines.push(`… and ${synced.length - MAX_OUT_LINES} more`);
  const sync = pool.upstreamSync;
  if (sync && !sync.ok)
    lines.unshift(
      `Upstream unreachable (${clip(sync.error ?? 'unknown error', 200)}), last tried ${discordTime(sync.at)}`,
    );
  else if (sync) lines.push(`synced ${discordTime(sync.at)}`);
  const total = pool.creditsRemaining === null ? '' : ` (${pool.creditsRemaining} on usable keys)`;
  return { name: `Credits left${total}`, value: clip(lines.join('\n') || 'not synced yet') };
}

function keyFileField(pool: PoolStats): APIEmbedField {
  const f = pool.keyFile;
  let value: string;
  if (f.error) value = `\`${f.path}\`: ${f.error}`;
  else if (!f.present) value = `\`${f.path}\` is missing`;
  else {
    const skipped = f.skippedLines ? `, ${f.skippedLines} skipped line${f.skippedLines === 1 ? '' : 's'}` : '';
    const modified = f.modifiedAt !== null ? `, modified ${discordTime(f.modifiedAt)}` : '';
    value = `\`${f.path}\`: ${f.keyCount} key${f.keyCount === 1 ? '' : 's'}${skipped}${modified}`;
  }
  return { name: 'Key file', value: clip(value) };
}

/**
 * What the proxy did for the pool (since the server started): credits spent beside requests; none
 * before its first request.
 */
function proxyField(pool: PoolStats): APIEmbedField | null {
  const p = pool.proxy;
  if (!p || p.requests === 0) return null;
  return {
    name: 'Proxy',
    value:
      `${p.requests} requests · **${p.creditsSpent}** credits spent · ${p.free} free · ${p.failovers} ` +
      `failovers · ${p.pins} identifications pinned`,
  };
}

/** Why the key server is degraded, for the unreachable embed. */
function degradedText(error: string): string {
  return `The key server is up but its state store is not (${clip(error, 200)}): apps get 503 until it is back.`;
}

/** Why the key server is unreachable, for the unreachable embed. */
function downText(error: string): string {
  return `The key server did not answer (${clip(error, 200)}).`;
}

/** When the bot last saw the key server. */
function seenText(lastSeenAt: number | null): string {
  return lastSeenAt === null
    ? 'Not seen since the bot started.'
    : `Last seen ${discordTime(lastSeenAt)} (${discordTime(lastSeenAt, 'f')}).`;
}

/**
 * One embed for one pool: availability, current key, keys out and when they return, forecast, key
 * file; its title links to the dashboard when `dashboardUrl` is given (DASHBOARD_URL).
 */
export function poolEmbed(
  pool: PoolStats,
  stats: Pick<StatsResponse, 'version' | 'generatedAt'>,
  threshold: number,
  dashboardUrl: string | null = null,
): APIEmbed {
  const level = poolLevel(pool, threshold);
  const credits = pool.creditsRemaining !== null ? ` · ${pool.creditsRemaining} credits left` : '';
  const lines = [`**${pool.available}/${pool.total}** keys available · ${pool.strategy}${credits}`];
  if (pool.throttledUntil !== null) lines.push(`Throttled upstream, serving again ${discordTime(pool.throttledUntil)}`);
  const left = pool.current?.remaining ?? null;
  const turn = left !== null ? ` · ${left} request${left === 1 ? '' : 's'} before rotation` : '';
  const current = pool.current ? `\`${pool.current.masked}\` (${pool.current.keyId})${turn}` : 'none yet';
  return {
    title: `Pool ${pool.name}`,
    ...(dashboardUrl ? { url: dashboardUrl } : {}),
    description: lines.join('\n'),
    color: COLORS[level],
    fields: [
      { name: 'Current key', value: clip(current) },
      outOfRotation(pool),
      ...[creditsField(pool), proxyField(pool)].filter((f): f is APIEmbedField => f !== null),
      {
        name: 'Forecast',
        value:
          pool.exhaustsAt !== null
            ? `runs dry ${discordTime(pool.exhaustsAt)} at the last hour's rate`
            : 'not running dry before the next reset',
      },
      keyFileField(pool),
    ],
    footer: { text: `Keywarden ${stats.version} · data from` },
    timestamp: new Date(stats.generatedAt).toISOString(),
  };
}

/**
 * The embeds answering `!stats` and `/stats`: one per pool (a summary of the rest past ten), linking
 * to the dashboard when given.
 */
export function statsEmbeds(stats: StatsResponse, threshold: number, dashboardUrl: string | null = null): APIEmbed[] {
  const apps = appsEmbed(stats);
  return apps
    ? [...poolEmbeds(stats, threshold, dashboardUrl, MAX_EMBEDS - 1), apps]
    : poolEmbeds(stats, threshold, dashboardUrl, MAX_EMBEDS);
}

/** How many apps `!stats` lists, the biggest spenders today first. */
const TOP_APPS = 5;

/** The apps that spent the most credits today, each with its pools against its budgets; null when there are none. */
export function appsEmbed(stats: StatsResponse): APIEmbed | null {
  const apps = stats.apps ?? [];
  if (apps.length === 0) return null;
  const today = (a: (typeof apps)[number]) => Object.values(a.usage).reduce((n, u) => n + u.credits.day, 0);
  const top = [...apps].sort((a, b) => today(b) - today(a) || a.name.localeCompare(b.name)).slice(0, TOP_APPS);
  const lines = top.map((a) => {
    const pools = Object.entries(a.usage)
      .filter(([, u]) => u.credits.day > 0 || u.budget?.day !== undefined)
      .map(([pool, u]) => `${pool} ${u.credits.day}${u.budget?.day !== undefined ? `/${u.budget.day}` : ''}`);
    const where = pools.length ? ` (${pools.join(', ')})` : '';
    return `**${a.name}** ${today(a)} today${where}${a.disabled ? ' · disabled' : ''}`;
  });
  return {
    title: `Top apps by credits today${apps.length > TOP_APPS ? ` (${TOP_APPS} of ${apps.length})` : ''}`,
    description: clip(lines.join('\n'), 4096),
    color: COLORS.ok,
    timestamp: new Date(stats.generatedAt).toISOString(),
  };
}

function poolEmbeds(stats: StatsResponse, threshold: number, dashboardUrl: string | null, room: number): APIEmbed[] {
  const pools = stats.pools;
  if (pools.length === 0) {
    return [
      {
        title: 'No pools',
        description: 'The key server reports no pools.',
        color: COLORS.empty,
        timestamp: new Date(stats.generatedAt).toISOString(),
      },
    ];
  }
  if (pools.length <= room) return pools.map((p) => poolEmbed(p, stats, threshold, dashboardUrl));
  const shown = pools.slice(0, room - 1).map((p) => poolEmbed(p, stats, threshold, dashboardUrl));
  const rest = pools.slice(room - 1);
  const worst = rest.some((p) => poolLevel(p, threshold) === 'empty')
    ? 'empty'
    : rest.some((p) => poolLevel(p, threshold) === 'low')
      ? 'low'
      : 'ok';
  shown.push({
    title: `${rest.length} more pools`,
    ...(dashboardUrl ? { url: dashboardUrl } : {}),
    description: clip(rest.map((p) => `**${p.name}** ${p.available}/${p.total}`).join('\n'), 4096),
    color: COLORS[worst],
    footer: { text: `Keywarden ${stats.version} · data from` },
    timestamp: new Date(stats.generatedAt).toISOString(),
  });
  return shown;
}

/** The red embed shown when the key server cannot be reached (or is degraded: up, but its state store is not). */
export function unreachableEmbed(
  error: string,
  lastSeenAt: number | null,
  checkedAt: number,
  degraded = false,
): APIEmbed {
  return {
    title: degraded ? 'Key server degraded' : 'Key server unreachable',
    description: `${degraded ? degradedText(error) : downText(error)}\n${seenText(lastSeenAt)}`,
    color: COLORS.empty,
    footer: { text: 'checked' },
    timestamp: new Date(checkedAt).toISOString(),
  };
}

/** Titles of the server's alerts, as they begin and as they end. */
function serverAlertTitle(a: ServerAlert, phase: 'start' | 'end'): string {
  const pool = a.pool ?? '';
  const titles: Record<string, [string, string]> = {
    key_invalid: [`A key of pool ${pool} is invalid`, `A key of pool ${pool} is accepted again`],
    pool_low: [
      a.severity === 'critical' ? `Pool ${pool} has no usable key` : `Pool ${pool} is running low`,
      `Pool ${pool} recovered`,
    ],
    credits_low: [`Pool ${pool} is running out of credits`, `Pool ${pool} has credits again`],
    runs_dry: [`Pool ${pool} runs dry soon`, `Pool ${pool} no longer runs dry soon`],
    sync_failing: [`The upstream sync of pool ${pool} fails`, `The upstream sync of pool ${pool} works again`],
    saves_failing: ['State saves fail', 'State saves work again'],
    budget_spent: [`App ${a.app ?? ''} has spent most of its budget`, `App ${a.app ?? ''} has budget left again`],
  };
  const [begins, ends] = titles[a.event] ?? [`Alert: ${a.event}`, `Over: ${a.event}`];
  return phase === 'start' ? begins : ends;
}

/** The message posted to the alert channel for one alert. */
export function alertEmbed(alert: Alert, at: number): APIEmbed {
  const timestamp = new Date(at).toISOString();
  switch (alert.kind) {
    case 'server_alert': {
      const a = alert.alert;
      const start = alert.phase === 'start';
      const sentence = /[.!?]$/u.test(a.message) ? a.message : `${a.message}.`;
      return {
        title: serverAlertTitle(a, alert.phase),
        description: clip(start ? sentence : `Was: ${sentence}`, 4096),
        color: start ? (a.severity === 'critical' ? COLORS.empty : COLORS.low) : COLORS.ok,
        timestamp,
      };
    }
    case 'server_down':
      return {
        title: alert.degraded ? 'Key server is degraded (state store down)' : 'Key server is down',
        description:
          `Polling the stats API failed (${clip(alert.error, 200)}).` +
          (alert.lastSeenAt !== null ? ` Last seen ${discordTime(alert.lastSeenAt)}.` : ''),
        color: COLORS.empty,
        timestamp,
      };
    case 'server_up':
      return { title: 'Key server is back', description: 'The stats API answers again.', color: COLORS.ok, timestamp };
  }
}
