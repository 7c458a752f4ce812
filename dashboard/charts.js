// A pool's history chart (uPlot): the outcomes of each bucket as stacked bars, and handouts served,
// credits and free calls as lines, for one range at a time (1h and 24h per minute, 7d per hour).
// The legend shows the newest bucket's values until the pointer picks another.

const LINES = ['served', 'credits', 'free'];
const STACKED = ['ok', 'rate_limited', 'exhausted', 'invalid', 'error', 'no_key'];
export const KIND_COLORS = {
  served: '#2563eb',
  credits: '#0891b2',
  free: '#84cc16',
  ok: '#16a34a',
  rate_limited: '#d97706',
  exhausted: '#9333ea',
  invalid: '#dc2626',
  error: '#64748b',
  no_key: '#475569',
};
const label = (k) => k.replace('_', ' ');

/**
 * The series uPlot draws: the lines as they are, then the stack from its top down (each bar is
 * the sum of those under it, drawn first so the lower ones paint over it); `raw` keeps each
 * kind's own counts for the legend.
 */
function seriesData(series) {
  const raw = Object.fromEntries([...LINES, ...STACKED].map((k) => [k, series.counts[k] ?? []]));
  const sums = [];
  let below = series.starts.map(() => 0);
  for (const k of STACKED) {
    below = below.map((n, i) => n + (raw[k][i] ?? 0));
    sums.push([k, below]);
  }
  const top = sums.reverse();
  return {
    kinds: [...LINES, ...top.map(([k]) => k)],
    data: [series.starts.map((t) => t / 1000), ...LINES.map((k) => raw[k]), ...top.map(([, v]) => v)],
    raw,
  };
}

/** Draws (or redraws) `series` in `slot` ({box, plot}), its legend on the newest bucket. */
export function drawChart(slot, series) {
  const width = Math.max(200, slot.box.clientWidth - 8);
  const { kinds, data, raw } = seriesData(series);
  slot.raw = raw;
  const newest = data[0].length - 1;
  if (slot.plot && slot.range === series.range) {
    slot.plot.setData(data);
    if (Math.abs(slot.plot.width - width) > 2) slot.plot.setSize({ width, height: 220 });
    slot.plot.setLegend({ idx: newest });
    return;
  }
  slot.plot?.destroy();
  slot.range = series.range;
  const bars = window.uPlot.paths.bars({ size: [0.8, 24] });
  slot.plot = new window.uPlot(
    {
      width,
      height: 220,
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      series: [
        {},
        ...kinds.map((k) => ({
          label: label(k),
          stroke: KIND_COLORS[k],
          width: LINES.includes(k) ? 2 : 0,
          ...(LINES.includes(k) ? {} : { fill: KIND_COLORS[k], paths: bars }),
          // The legend says each kind's own count, not the stack's height.
          value: (_u, _v, _si, idx) => (idx === null || idx === undefined ? '--' : String(slot.raw[k][idx] ?? 0)),
        })),
      ],
      axes: [{ stroke: 'currentColor' }, { stroke: 'currentColor' }],
      legend: { live: true },
      hooks: {
        // Off the chart, the legend goes back to the newest bucket instead of dashes.
        setCursor: [
          (u) => {
            if (u.cursor.idx === null || u.cursor.idx === undefined) u.setLegend({ idx: u.data[0].length - 1 }, false);
          },
        ],
      },
    },
    data,
    slot.box,
  );
  slot.plot.setLegend({ idx: newest });
}
