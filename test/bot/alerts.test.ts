import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { INITIAL_ALERT_STATE, stepAlerts, type AlertState } from '../../bot/alerts.js';
import type { PollResult } from '../../bot/api.js';
import type { ServerAlert } from '../../shared/stats.js';

const alert = (id: string, severity: ServerAlert['severity'] = 'warning'): ServerAlert => ({
  id,
  event: id.split(':')[0]!,
  severity,
  pool: 'plantid',
  message: `${id} holds`,
  since: '2026-11-21T12:00:00.000Z',
});
const poll = (alerts: ServerAlert[] | null): PollResult => ({
  ok: true,
  at: 1,
  stats: { version: 't', uptimeSec: 1, generatedAt: 1, pools: [] },
  alerts,
});
const down: PollResult = { ok: false, error: 'ECONNREFUSED', at: 2 };

/** Runs polls through the state machine; what each posted, as kind or event+phase. */
function run(polls: PollResult[], state: AlertState = INITIAL_ALERT_STATE): string[][] {
  return polls.map((p) => {
    const step = stepAlerts(state, p, 7);
    state = step.state;
    return step.alerts.map((a) => (a.kind === 'server_alert' ? `${a.alert.id} ${a.phase}` : a.kind));
  });
}

describe("the bot's alerts: the server's, once each, and the server's own coming and going", () => {
  it("posts each of the server's alerts once when it appears and once when it is gone", () => {
    const a = alert('key_invalid:plantid:abc');
    const b = alert('pool_low:plantid', 'critical');
    assert.deepEqual(run([poll([]), poll([a]), poll([a]), poll([a, b]), poll([b]), poll([])]), [
      [],
      ['key_invalid:plantid:abc start'],
      [],
      ['pool_low:plantid start'],
      ['key_invalid:plantid:abc end'],
      ['pool_low:plantid end'],
    ]);
  });

  it('server down and back once each; its alerts are kept across the outage, so only real changes post', () => {
    const a = alert('pool_low:plantid');
    assert.deepEqual(run([poll([a]), down, down, poll([a]), down, poll([])]), [
      ['pool_low:plantid start'],
      ['server_down'],
      [],
      ['server_up'],
      ['server_down'],
      ['server_up', 'pool_low:plantid end'],
    ]);
  });

  it('unreachable from the start alerts down; the down alert carries the error, when last seen, and degraded', () => {
    const first = stepAlerts(
      INITIAL_ALERT_STATE,
      { ok: false, error: 'HTTP 503 state_unavailable', at: 3, degraded: true },
      7,
    );
    assert.deepEqual(first.alerts, [
      { kind: 'server_down', error: 'HTTP 503 state_unavailable', lastSeenAt: 7, degraded: true },
    ]);
  });

  it('a server without an alert engine (no /api/alerts) posts none of its own, and forgets none', () => {
    const a = alert('pool_low:plantid');
    assert.deepEqual(run([poll([a]), poll(null), poll([a])]), [['pool_low:plantid start'], [], []]);
  });
});
