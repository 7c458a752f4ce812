import type { PoolStats } from '../shared/stats.js';

/** How a pool stands against the low-keys threshold. */
export type PoolLevel = 'ok' | 'low' | 'empty';

export function poolLevel(pool: Pick<PoolStats, 'available'>, threshold: number): PoolLevel {
  if (pool.available === 0) return 'empty';
  if (pool.available <= threshold) return 'low';
  return 'ok';
}

export const COLORS = { ok: 0x2ecc71, low: 0xf1c40f, empty: 0xe74c3c } as const;
