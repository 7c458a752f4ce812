import type { FieldKind, KindTypes } from '../../server/pools/fields.js';

export type FieldSamples = { [K in FieldKind]: NonNullable<KindTypes[K]> };

/**
 * A value of each kind of the field table (pools/fields.ts) away from its default, with times
 * plausible at `at` (the state file's reader drops implausible ones): for tests that put every
 * field through an encoding.
 */
export function fieldSamples(at: number): FieldSamples {
  return {
    hold: { until: at + 60_000, reason: 'sample hold' },
    disabled: { reason: 'sample disable', lineHash: 'abcdef012345' },
    times: [at - 2_000, at - 1_000],
    level: 3,
    probe: at - 500,
    seq: 41,
    count: 17,
    time: at - 5_000,
    verdict: { status: 'exhausted', reason: 'sample verdict', until: at + 3_600_000 },
    credits: {
      remaining: { day: 90, week: null, month: 190, total: null },
      used: { day: 10, week: null, month: 10, total: 12 },
      limits: { day: 100, week: null, month: 200, total: null },
      syncedAt: at - 10_000,
    },
  };
}
