/**
 * What is wrong right now, read off what the server already knows (its stats, the pools'
 * histories, the apps' usage, how its saves and syncs go): one condition per thing an operator
 * should hear about. Pure: the engine (engine.ts) turns their coming and going into alerts.
 */
import type { AppStats, PoolStats } from '../../shared/stats.js';

export type Severity = 'critical' | 'warning' | 'info';

/** One thing wrong now. `id` names it across checks (and instances): the same problem, the same id. */
export interface Condition {
  id: string;
  kind: 'key_invalid' | 'pool_low' | 'credits_low' | 'runs_dry' | 'sync_failing' | 'saves_failing' | 'budget_spent';
  severity: Exclude<Severity, 'info'>;
  pool: string | null;
  keyId?: string;
  masked?: string;
  app?: string;
  message: string;
}

export interface AlertSettings {
  /** A pool with this many usable keys or fewer is low (ALERT_MIN_AVAILABLE). */
  minAvailable: number;
  /** Credits left under this is low (LOW_CREDITS_THRESHOLD). */
  lowCredits: number;
  /** A pool forecast to run dry within this many minutes (ALERT_RUNS_DRY_MINUTES). */
  runsDryMinutes: number;
  /** How long a pool's upstream sync must fail before it is an alert. */
  syncFailingMs: number;
}

export const SUSTAINED_MINUTES = 15;
/** Of the last SUSTAINED_MINUTES minutes, how many must have served for the rate to count as sustained. */
const SUSTAINED_BUSY_MINUTES = 12;
/** An app's budget this far spent in any window is an alert. */
export const BUDGET_ALERT_SHARE = 0.8;

export interface Snapshot {
  now: number;
  pools: readonly PoolStats[];
  /** Handouts served per minute over the last hour, oldest first, by pool. */
  servedPerMinute: ReadonlyMap<string, readonly number[]>;
  /** Since when each pool's upstream sync has failed without a success between (absent: it does not). */
  syncFailingSince: ReadonlyMap<string, number>;
  /** The state saves: failing since when (null: the last one landed), and the last error. */
  saves: { failingSince: number | null; error: string | null };
  apps: readonly AppStats[];
}

const minutes = (ms: number) => Math.max(1, Math.round(ms / 60_000));

/** Every condition that holds in `s`. */
export function conditionsOf(s: Snapshot, settings: AlertSettings): Condition[] {
  const out: Condition[] = [];
  for (const p of s.pools) {
    for (const k of p.keys)
      if (k.status === 'invalid')
        out.push({
          id: `key_invalid:${p.name}:${k.keyId}`,
          kind: 'key_invalid',
          severity: 'warning',
          pool: p.name,
          keyId: k.keyId,
          masked: k.masked,
          message: `key ${k.masked} (${k.keyId}) of pool ${p.name} is invalid: ${k.reason ?? 'refused upstream'}`,
        });
    // A pool with no key file has nothing to run out of (that it has none is logged at start).
    if ((p.total > 0 || p.keyFile.present) && p.available <= settings.minAvailable)
      out.push({
        id: `pool_low:${p.name}`,
        kind: 'pool_low',
        severity: p.available === 0 ? 'critical' : 'warning',
        pool: p.name,
        message:
          `pool ${p.name} has ${p.available} of ${p.total} keys usable ` +
          `(alert at ${settings.minAvailable} or fewer)`,
      });
    if (p.creditsRemaining !== null && p.creditsRemaining < settings.lowCredits)
      out.push({
        id: `credits_low:${p.name}`,
        kind: 'credits_low',
        severity: p.creditsRemaining === 0 ? 'critical' : 'warning',
        pool: p.name,
        message: `pool ${p.name} has ${p.creditsRemaining} credits left (alert under ${settings.lowCredits})`,
      });
    const dry = runsDry(p, s.servedPerMinute.get(p.name) ?? [], s.now, settings);
    if (dry) out.push(dry);
    const failingSince = s.syncFailingSince.get(p.name);
    if (failingSince !== undefined && s.now - failingSince >= settings.syncFailingMs)
      out.push({
        id: `sync_failing:${p.name}`,
        kind: 'sync_failing',
        severity: 'warning',
        pool: p.name,
        message:
          `the upstream sync of pool ${p.name} has failed for ${minutes(s.now - failingSince)} min` +
          (p.upstreamSync?.error ? `: ${p.upstreamSync.error}` : ''),
      });
  }
  if (s.saves.failingSince !== null)
    out.push({
      id: 'saves_failing',
      kind: 'saves_failing',
      severity: 'critical',
      pool: null,
      message:
        `state saves have failed for ${minutes(s.now - s.saves.failingSince)} min: ` +
        (s.saves.error ?? 'unknown error'),
    });
  for (const app of s.apps) out.push(...budgetConditions(app));
  return out;
}

/**
 * A pool forecast to run dry within the window, at a rate the pool has sustained: handouts in
 * most of the last 15 minutes (one burst is no trend).
 */
function runsDry(p: PoolStats, served: readonly number[], now: number, settings: AlertSettings): Condition | null {
  if (p.exhaustsAt === null || p.exhaustsAt - now > settings.runsDryMinutes * 60_000) return null;
  const recent = served.slice(-SUSTAINED_MINUTES);
  if (recent.filter((n) => n > 0).length < SUSTAINED_BUSY_MINUTES) return null;
  return {
    id: `runs_dry:${p.name}`,
    kind: 'runs_dry',
    severity: 'warning',
    pool: p.name,
    message:
      `pool ${p.name} runs dry in about ${minutes(p.exhaustsAt - now)} min at the rate of the last hour ` +
      `(sustained over ${SUSTAINED_MINUTES} min)`,
  };
}

function budgetConditions(app: AppStats): Condition[] {
  const out: Condition[] = [];
  for (const [pool, u] of Object.entries(app.usage)) {
    const windows = (['day', 'week', 'month'] as const).filter((w) => {
      const limit = u.budget?.[w];
      return limit !== undefined && limit > 0 && u.credits[w] >= BUDGET_ALERT_SHARE * limit;
    });
    if (windows.length === 0) continue;
    const w = windows[0]!;
    out.push({
      id: `budget_spent:${app.name}:${pool}`,
      kind: 'budget_spent',
      severity: u.credits[w] >= u.budget![w]! ? 'critical' : 'warning',
      pool,
      app: app.name,
      message: `app ${app.name} has spent ${u.credits[w]} of its ${w} budget of ${u.budget![w]} in pool ${pool}`,
    });
  }
  return out;
}

/** What an alert's end says: the problem is over. */
export function resolvedMessage(c: Condition): string {
  switch (c.kind) {
    case 'key_invalid':
      return `key ${c.masked} (${c.keyId}) of pool ${c.pool} is accepted again`;
    case 'pool_low':
      return `pool ${c.pool} has usable keys above the alert level again`;
    case 'credits_low':
      return `pool ${c.pool} has credits above the alert level again`;
    case 'runs_dry':
      return `pool ${c.pool} is no longer forecast to run dry soon`;
    case 'sync_failing':
      return `the upstream sync of pool ${c.pool} works again`;
    case 'saves_failing':
      return 'state saves work again';
    case 'budget_spent':
      return `app ${c.app} has room in its budget in pool ${c.pool} again`;
  }
}
