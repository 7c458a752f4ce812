/**
 * Fixed limit windows. `minute` and `hour` are fixed UTC windows; `day`, `month` and `week`
 * (from Monday) start at local midnight in the pool's reset time zone (IANA name, default UTC),
 * because providers reset daily, weekly and monthly quotas at their own midnight.
 */

export type WindowKind = 'minute' | 'hour' | 'day' | 'month' | 'week';
/** In the order state files list window counts (`week` came last, so older files still read). */
export const WINDOW_KINDS: readonly WindowKind[] = ['minute', 'hour', 'day', 'month', 'week'];

export interface WindowBounds {
  startMs: number;
  endMs: number;
}

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** True when `timeZone` is an IANA zone name this runtime knows. */
export function isValidTimeZone(timeZone: string): boolean {
  try {
    formatterFor(timeZone);
    return true;
  } catch {
    return false;
  }
}

interface LocalParts {
  year: number;
  month: number;
  day: number;
}

function localParts(instantMs: number, timeZone: string): LocalParts & { offsetMs: number } {
  const parts: Record<string, number> = {};
  for (const p of formatterFor(timeZone).formatToParts(new Date(instantMs))) {
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  }
  const year = parts.year!,
    month = parts.month!,
    day = parts.day!;
  const asUtc = Date.UTC(year, month - 1, day, parts.hour!, parts.minute!, parts.second!);
  const offsetMs = asUtc - (instantMs - (((instantMs % 1000) + 1000) % 1000));
  return { year, month, day, offsetMs };
}

/** The instant of local midnight starting the given local date (month/day may overflow; Date.UTC normalises). */
function zonedMidnight(year: number, month: number, day: number, timeZone: string): number {
  const wall = Date.UTC(year, month - 1, day);
  const guess = wall - localParts(wall, timeZone).offsetMs;
  return wall - localParts(guess, timeZone).offsetMs;
}

/** Bounds of the window of `kind` that contains `nowMs`. */
export function windowBounds(kind: WindowKind, nowMs: number, timeZone = 'UTC'): WindowBounds {
  switch (kind) {
    case 'minute': {
      const startMs = Math.floor(nowMs / MINUTE_MS) * MINUTE_MS;
      return { startMs, endMs: startMs + MINUTE_MS };
    }
    case 'hour': {
      const startMs = Math.floor(nowMs / HOUR_MS) * HOUR_MS;
      return { startMs, endMs: startMs + HOUR_MS };
    }
    case 'day': {
      const { year, month, day } = localParts(nowMs, timeZone);
      return {
        startMs: zonedMidnight(year, month, day, timeZone),
        endMs: zonedMidnight(year, month, day + 1, timeZone),
      };
    }
    case 'month': {
      const { year, month } = localParts(nowMs, timeZone);
      return { startMs: zonedMidnight(year, month, 1, timeZone), endMs: zonedMidnight(year, month + 1, 1, timeZone) };
    }
    case 'week': {
      const { year, month, day } = localParts(nowMs, timeZone);
      const sinceMonday = (new Date(Date.UTC(year, month - 1, day)).getUTCDay() + 6) % 7;
      return {
        startMs: zonedMidnight(year, month, day - sinceMonday, timeZone),
        endMs: zonedMidnight(year, month, day - sinceMonday + 7, timeZone),
      };
    }
  }
}

/**
 * Caches the current bounds of each window kind for one time zone, so the handout path
 * computes calendar windows only when a boundary is crossed.
 */
export class WindowClock {
  private readonly cache = new Map<WindowKind, WindowBounds>();

  constructor(readonly timeZone = 'UTC') {}

  bounds(kind: WindowKind, nowMs: number): WindowBounds {
    const hit = this.cache.get(kind);
    if (hit && nowMs >= hit.startMs && nowMs < hit.endMs) return hit;
    const fresh = windowBounds(kind, nowMs, this.timeZone);
    this.cache.set(kind, fresh);
    return fresh;
  }
}
