import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keyIdOf } from '../../../shared/keys.js';
import { makeKeys } from '../../helpers/keys.js';
import { getJson, postJson, startInProcess } from '../../helpers/server.js';
import { until } from '../../helpers/wait.js';
import { createMetrics } from '../../../server/http/metrics.js';
import type { PoolRegistry } from '../../../server/pools/registry.js';

const TOKEN = 'metrics-token-0123456789';

function metric(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  assert.ok(line, `no series ${series}`);
  return Number(line.slice(series.length + 1));
}

describe('GET /metrics', () => {
  it('counts handouts and reports, gauges keys by status, times requests and saves; token-protected', async (t) => {
    const keys = makeKeys(3);
    const s = await startInProcess(t, {
      keys: { plantid: keys },
      pools: { plantid: { limits: { total: 2 } } },
      env: { API_TOKENS: TOKEN, STATE_SAVE_INTERVAL_MS: '50' },
    });
    const h = { authorization: `Bearer ${TOKEN}` };
    assert.equal((await getJson(`${s.url}/metrics`)).status, 401);
    for (let i = 0; i < 8; i++) await getJson(`${s.url}/api/plantid`, { headers: h });
    await postJson(`${s.url}/api/plantid/report`, { keyId: keyIdOf(keys[0]!), outcome: 'invalid' }, h);
    await postJson(`${s.url}/api/plantid/report`, { keyId: keyIdOf(keys[1]!), status: 503 }, h);
    // Until a timed state save has run (every 50 ms here).
    await until(
      'a state save',
      async () =>
        metric(
          await (await fetch(`${s.url}/metrics`, { headers: h })).text(),
          'keywarden_state_save_duration_seconds_count',
        ) >= 1,
    );
    const res = await fetch(`${s.url}/metrics`, { headers: h });
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/u);
    const text = await res.text();
    assert.equal(metric(text, 'keywarden_handouts_total{pool="plantid",outcome="served"}'), 6);
    assert.equal(metric(text, 'keywarden_handouts_total{pool="plantid",outcome="no_key"}'), 2);
    assert.equal(metric(text, 'keywarden_reports_total{pool="plantid",outcome="invalid"}'), 1);
    assert.equal(metric(text, 'keywarden_reports_total{pool="plantid",outcome="error"}'), 1);
    assert.equal(metric(text, 'keywarden_keys{pool="plantid",status="disabled"}'), 1);
    assert.equal(metric(text, 'keywarden_keys{pool="plantid",status="exhausted"}'), 2);
    assert.equal(metric(text, 'keywarden_keys{pool="healthid",status="available"}'), 0);
    assert.equal(
      metric(text, 'keywarden_http_request_duration_seconds_count{method="GET",route="/api/:pool",status="200"}'),
      6,
    );
    assert.equal(
      metric(text, 'keywarden_http_request_duration_seconds_count{method="GET",route="/api/:pool",status="503"}'),
      2,
    );
    assert.ok(metric(text, 'keywarden_state_save_duration_seconds_count') >= 1);
    assert.equal(metric(text, 'keywarden_state_save_failures_total'), 0);
    assert.match(text, /^keywarden_process_resident_memory_bytes \d+/mu);
    for (const k of keys) assert.ok(!text.includes(k));
  });

  it('exposes request latency as a cumulative Prometheus histogram (le inclusive) and counters that keep counting across scrapes', async () => {
    const m = createMetrics({ stats: async () => ({ pools: [] }), names: () => [] } as unknown as PoolRegistry);
    for (const seconds of [0.0005, 0.0007, 0.001, 0.3, 2]) m.request('GET', '/api/:pool', 200, seconds);
    m.request('POST', '/api/:pool/report', 204, 0.002);
    m.handout('plantid', 'served');
    m.handout('plantid', 'served');
    let text = await m.registry.metrics();
    const series = (le: string) =>
      `keywarden_http_request_duration_seconds_bucket{method="GET",route="/api/:pool",status="200",le="${le}"}`;
    assert.equal(metric(text, series('0.0005')), 1);
    assert.equal(metric(text, series('0.001')), 3);
    assert.equal(metric(text, series('0.25')), 3);
    assert.equal(metric(text, series('1')), 4);
    assert.equal(metric(text, series('+Inf')), 5);
    assert.equal(
      metric(text, 'keywarden_http_request_duration_seconds_sum{method="GET",route="/api/:pool",status="200"}'),
      0.0005 + 0.0007 + 0.001 + 0.3 + 2,
    );
    assert.equal(
      metric(
        text,
        'keywarden_http_request_duration_seconds_count{method="POST",route="/api/:pool/report",status="204"}',
      ),
      1,
    );
    assert.match(text, /^# TYPE keywarden_http_request_duration_seconds histogram$/mu);
    assert.equal(metric(text, 'keywarden_handouts_total{pool="plantid",outcome="served"}'), 2);
    m.handout('plantid', 'served');
    m.report('plantid', 'ok');
    text = await m.registry.metrics();
    assert.equal(metric(text, 'keywarden_handouts_total{pool="plantid",outcome="served"}'), 3);
    assert.equal(metric(text, 'keywarden_reports_total{pool="plantid",outcome="ok"}'), 1);
    m.registry.resetMetrics();
    text = await m.registry.metrics();
    assert.doesNotMatch(text, /^keywarden_http_request_duration_seconds_count/mu);
  });
});
