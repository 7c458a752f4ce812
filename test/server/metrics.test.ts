import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keyIdOf } from '../../shared/keys.js';
import { makeKeys } from '../helpers/keys.js';
import { getJson, postJson, startInProcess } from '../helpers/server.js';

const TOKEN = 'metrics-token-0123456789';

function metric(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  assert.ok(line, `no series ${series}`);
  return Number(line.slice(series.length + 1));
}

describe('GET /metrics', () => {
  it('counts handouts and reports, gauges keys by status, times requests and saves; token-protected', async (t) => {
    const keys = makeKeys(3);
    const s = await startInProcess(t, { keys: { plantid: keys }, pools: { plantid: { limits: { total: 2 } } }, env: { API_TOKENS: TOKEN, STATE_SAVE_INTERVAL_MS: '50' } });
    const h = { authorization: `Bearer ${TOKEN}` };
    assert.equal((await getJson(`${s.url}/metrics`)).status, 401);
    for (let i = 0; i < 8; i++) await getJson(`${s.url}/api/plantid`, { headers: h });
    await postJson(`${s.url}/api/plantid/report`, { keyId: keyIdOf(keys[0]!), outcome: 'invalid' }, h);
    await postJson(`${s.url}/api/plantid/report`, { keyId: keyIdOf(keys[1]!), status: 503 }, h);
    await new Promise((r) => setTimeout(r, 150)); // a state save or two
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
    assert.equal(metric(text, 'keywarden_http_request_duration_seconds_count{method="GET",route="/api/:pool",status="200"}'), 6);
    assert.equal(metric(text, 'keywarden_http_request_duration_seconds_count{method="GET",route="/api/:pool",status="503"}'), 2);
    assert.ok(metric(text, 'keywarden_state_save_duration_seconds_count') >= 1);
    assert.equal(metric(text, 'keywarden_state_save_failures_total'), 0);
    assert.match(text, /^keywarden_process_resident_memory_bytes \d+/mu);
    for (const k of keys) assert.ok(!text.includes(k));
  });
});
