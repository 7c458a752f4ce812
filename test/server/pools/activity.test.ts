import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Activity } from '../../../server/pools/activity.js';

const T = Date.parse('2026-11-21T12:00:30Z');

describe('the history behind the dashboard', () => {
  it('counts per minute and per hour; a range is every bucket up to now, zeros included', () => {
    const a = new Activity();
    a.record('served', T, 3);
    a.record('ok', T + 1000);
    a.record('no_key', T - 60_000);
    const h = a.series('1h', T);
    assert.equal(h.starts.length, 60);
    assert.equal(h.bucketMs, 60_000);
    assert.equal(h.starts.at(-1), Date.parse('2026-11-21T12:00:00Z'));
    assert.deepEqual(
      [h.counts.served.at(-1), h.counts.ok.at(-1), h.counts.no_key.at(-2), h.counts.served.at(-2)],
      [3, 1, 1, 0],
    );
    const week = a.series('7d', T);
    assert.deepEqual(
      [week.starts.length, week.bucketMs, week.counts.served.at(-1), week.counts.no_key.at(-2)],
      [168, 3_600_000, 3, 1],
    );
    assert.equal(a.series('24h', T).starts.length, 1440);
  });

  it('keeps a day of minutes and a week of hours; saves and loads', () => {
    const a = new Activity();
    a.record('served', T - 8 * 86_400_000);
    a.record('error', T - 2 * 86_400_000);
    a.record('served', T);
    const saved = a.save();
    assert.equal(saved.minutes.length, 1); // the minute two days back fell out
    assert.deepEqual(
      saved.hours.map((r) => r[0]),
      [Date.parse('2026-11-19T12:00:00Z'), Date.parse('2026-11-21T12:00:00Z')],
    );
    const b = new Activity();
    b.load(saved);
    assert.deepEqual(b.series('7d', T), a.series('7d', T));
    b.add(saved);
    assert.equal(b.series('1h', T).counts.served.at(-1), 2);
  });

  it('collects what a shared store has not been given yet', () => {
    const a = new Activity();
    a.record('served', T);
    a.collectPending();
    a.record('ok', T, 2);
    assert.deepEqual(a.takePending().minutes, [[Date.parse('2026-11-21T12:00:00Z'), 0, 2, 0, 0, 0, 0, 0, 0, 0]]);
    assert.deepEqual(a.takePending(), { minutes: [], hours: [] });
    assert.equal(a.series('1h', T).counts.ok.at(-1), 2); // its own view keeps everything
  });
});
