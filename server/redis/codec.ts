import type { Counter, KeyState } from '../pools/records.js';
import { WINDOW_KINDS, type WindowKind } from '../pools/windows.js';

/**
 * A key's persisted state as its Redis hash, and back: the field codes `pool.lua` and
 * `rules.lua` read (`t` total, `lu` last use, `mS`/`mC` … a window's start and count, `bU`/`bR`
 * a block, …). The state file's encoding of the same record is `state/format.ts`.
 */

const FIELD: Record<WindowKind, string> = { minute: 'm', hour: 'h', day: 'd', month: 'o', week: 'w' };

/** Reads a key's hash into the persisted KeyState shape (the same the state file holds). */
export function keyStateOf(h: Record<string, string>): KeyState {
  const windows: KeyState['windows'] = {};
  for (const kind of WINDOW_KINDS) {
    const start = h[`${FIELD[kind]}S`];
    if (start !== undefined)
      windows[kind] = { start: Number(start), count: Number(h[`${FIELD[kind]}C`] ?? 0) } satisfies Counter;
  }
  return {
    windows,
    total: Number(h.t ?? 0),
    lastUsedAt: h.lu === undefined ? null : Number(h.lu),
    block: h.bU === undefined ? null : { until: Number(h.bU), reason: h.bR ?? '' },
    exhausted: h.eU === undefined ? null : { until: Number(h.eU), reason: h.eR ?? '' },
    disabled: h.xR === undefined ? null : { reason: h.xR, lineHash: h.xL ?? '' },
    failures: h.f ? h.f.split(',').map(Number) : [],
    backoffLevel: Number(h.bl ?? 0),
    probe: h.pr === undefined ? null : h.pr === 'ready' ? 'ready' : Number(h.pr),
    useSeq: h.us === undefined ? undefined : Number(h.us),
    upstreamHold:
      h.uS === undefined
        ? null
        : {
            status: h.uS as 'invalid' | 'exhausted',
            reason: h.uR ?? '',
            until: h.uU === undefined ? null : Number(h.uU),
          },
    credits: h.uc === undefined ? null : (JSON.parse(h.uc) as KeyState['credits']),
  };
}

/** A key's persisted state as its Redis hash (the inverse of keyStateOf); retired keys keep their hash too. */
export function hashOf(k: KeyState): Record<string, string> {
  const h: Record<string, string> = { t: String(k.total) };
  for (const kind of WINDOW_KINDS) {
    const w = k.windows[kind];
    if (w) {
      h[`${FIELD[kind]}S`] = String(w.start);
      h[`${FIELD[kind]}C`] = String(w.count);
    }
  }
  if (k.lastUsedAt !== null) h.lu = String(k.lastUsedAt);
  if (k.block) Object.assign(h, { bU: String(k.block.until), bR: k.block.reason });
  if (k.exhausted) Object.assign(h, { eU: String(k.exhausted.until), eR: k.exhausted.reason });
  if (k.disabled) Object.assign(h, { xR: k.disabled.reason, xL: k.disabled.lineHash });
  if (k.failures.length > 0) h.f = k.failures.join(',');
  if (k.backoffLevel !== 0) h.bl = String(k.backoffLevel);
  if (k.probe !== null) h.pr = String(k.probe);
  if (k.useSeq !== undefined) h.us = String(k.useSeq);
  if (k.upstreamHold) {
    Object.assign(h, { uS: k.upstreamHold.status, uR: k.upstreamHold.reason });
    if (k.upstreamHold.until !== null) h.uU = String(k.upstreamHold.until);
  }
  if (k.credits) {
    h.uc = JSON.stringify(k.credits);
    // The plan's limits, as the script reads them (rules.lua keyLimits).
    for (const [field, window] of [
      ['pD', 'day'],
      ['pW', 'week'],
      ['pO', 'month'],
      ['pT', 'total'],
    ] as const) {
      const l = k.credits.limits[window];
      if (l !== null) h[field] = String(l);
    }
  }
  return h;
}
