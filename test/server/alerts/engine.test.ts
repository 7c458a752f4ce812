/**
 * The alert conditions (pure) and the engine's timing: a forecast alerts only at a sustained rate,
 * a failing sync only after 10 minutes, a budget at 80 %; an alert fires once, reminds every
 * ALERT_REMIND_HOURS while it lasts, and ends once; a lease another instance holds sends nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { conditionsOf, type AlertSettings, type Snapshot } from '../../../server/alerts/conditions.js';
import { AlertEngine } from '../../../server/alerts/engine.js';
import type { AlertEvent } from '../../../server/alerts/webhooks.js';
import type { PoolRegistry } from '../../../server/pools/registry.js';
import type { AppStats, PoolStats } from '../../../shared/stats.js';
import { memoryLogger } from '../../helpers/logs.js';

const NOW = Date.parse('2026-12-04T12:00:00Z');
const SETTINGS: AlertSettings = { minAvailable: 1, lowCredits: 50, runsDryMinutes: 60, syncFailingMs: 600_000 };

function pool(over: Partial<PoolStats> = {}): PoolStats {
  return {
    name: 'plantid',
    available: 3,
    total: 3,
    creditsRemaining: null,
    exhaustsAt: null,
    upstreamSync: null,
    keyFile: { present: true },
    keys: [],
    ...over,
  } as unknown as PoolStats;
}

const snapshot = (over: Partial<Snapshot> = {}): Snapshot => ({
  now: NOW,
  pools: [pool()],
  servedPerMinute: new Map(),
  syncFailingSince: new Map(),
  saves: { failingSince: null, error: null },
  apps: [],
  ...over,
});
const ids = (s: Snapshot) => conditionsOf(s, SETTINGS).map((c) => c.id);

describe('alert conditions', () => {
  it('runs dry: only within the window and at a rate sustained over 15 minutes', () => {
    const soon = [pool({ exhaustsAt: NOW + 30 * 60_000 })];
    const busy = new Map([['plantid', Array.from({ length: 60 }, () => 5)]]);
    const burst = new Map([['plantid', [...Array.from({ length: 59 }, () => 0), 300]]]);
    assert.deepEqual(ids(snapshot({ pools: soon, servedPerMinute: busy })), ['runs_dry:plantid']);
    assert.deepEqual(ids(snapshot({ pools: soon, servedPerMinute: burst })), []);
    assert.deepEqual(ids(snapshot({ pools: [pool({ exhaustsAt: NOW + 90 * 60_000 })], servedPerMinute: busy })), []);
  });

  it('a sync failing for 10 minutes, saves failing, credits low, a pool at its minimum', () => {
    assert.deepEqual(ids(snapshot({ syncFailingSince: new Map([['plantid', NOW - 9 * 60_000]]) })), []);
    assert.deepEqual(ids(snapshot({ syncFailingSince: new Map([['plantid', NOW - 10 * 60_000]]) })), [
      'sync_failing:plantid',
    ]);
    assert.deepEqual(ids(snapshot({ saves: { failingSince: NOW, error: 'ENOSPC' } })), ['saves_failing']);
    assert.deepEqual(ids(snapshot({ pools: [pool({ creditsRemaining: 49, available: 1 })] })), [
      'pool_low:plantid',
      'credits_low:plantid',
    ]);
    // No key file: nothing to run out of.
    assert.deepEqual(
      ids(snapshot({ pools: [pool({ available: 0, total: 0, keyFile: { present: false } } as never)] })),
      [],
    );
  });

  it("an app's budget 80 % spent in any window", () => {
    const app = (day: number): AppStats => ({
      name: 'mobile',
      mode: 'proxy',
      disabled: false,
      lastSeenAt: NOW,
      usage: {
        plantid: {
          handouts: day,
          credits: { day, week: day, month: day, total: day },
          budget: { day: 100 },
          lastSeenAt: NOW,
          outcomes: {},
          failovers: 0,
        },
      },
    });
    assert.deepEqual(ids(snapshot({ apps: [app(79)] })), []);
    const [c] = conditionsOf(snapshot({ apps: [app(80)] }), SETTINGS);
    assert.deepEqual(
      [c!.id, c!.severity, c!.message],
      ['budget_spent:mobile:plantid', 'warning', 'app mobile has spent 80 of its day budget of 100 in pool plantid'],
    );
  });
});

describe('the alert engine', () => {
  it('once at the start, a reminder every ALERT_REMIND_HOURS, once at the end; two instances send each once', async () => {
    let now = NOW;
    let stats = [pool({ available: 0 })];
    const sent: AlertEvent[] = [];
    const leases = new Set<string>();
    const registry = {
      stats: async () => ({ pools: stats }),
      activitySeries: async () => ({ counts: { served: [] } }),
    } as unknown as PoolRegistry;
    // Two instances on one store: the same registry's figures, one set of leases.
    const instance = () =>
      new AlertEngine({
        registry,
        apps: async () => [],
        claim: async (job) => !leases.has(job) && (leases.add(job), true),
        send: (e) => sent.push(e),
        logger: memoryLogger().logger,
        clock: () => now,
        options: {
          ...SETTINGS,
          intervalMs: 1000,
          remindMs: 6 * 3_600_000,
          dashboardUrl: 'https://k.example/dashboard',
        },
      });
    const [engine, other] = [instance(), instance()];
    const checkBoth = async () => {
      await engine.check();
      await other.check();
    };
    await checkBoth();
    await checkBoth();
    now += 6 * 3_600_000;
    await checkBoth();
    now += 3_600_000;
    await checkBoth();
    assert.equal(other.list().length, 1); // both know the alert; one sent it
    assert.equal(engine.list().length, 1);
    stats = [pool()];
    await checkBoth();
    assert.deepEqual(
      sent.map((e) => [e.event, e.severity]),
      [
        ['pool_low', 'critical'],
        ['pool_low.reminder', 'critical'],
        ['pool_low.resolved', 'info'],
      ],
    );
    assert.equal(sent[0]!.dashboardUrl, 'https://k.example/dashboard');
    assert.equal(sent[2]!.message, 'pool plantid has usable keys above the alert level again');
    assert.deepEqual([engine.list(), other.list()], [[], []]);
  });
});
