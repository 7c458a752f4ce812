/** Key health through the running server (in-process, fake clock, real HTTP on loopback). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keyIdOf } from '../../../shared/keys.js';
import type { KeyStats, StatsResponse } from '../../../shared/stats.js';
import { FakeClock } from '../../helpers/clock.js';
import { makeKeys } from '../../helpers/keys.js';
import { getJson, postJson, startInProcess } from '../../helpers/server.js';

async function poolStats(url: string, pool = 'plantid') {
  const s = (await getJson(`${url}/api/stats`)).body as StatsResponse;
  return s.pools.find((p) => p.name === pool)!;
}

async function keyRow(url: string, keyId: string): Promise<KeyStats> {
  return (await poolStats(url)).keys.find((k) => k.keyId === keyId)!;
}

const report = (url: string, body: Record<string, unknown>) => postJson(`${url}/api/plantid/report`, body);

describe('key health over HTTP', () => {
  it('honours Retry-After to the millisecond', async (t) => {
    const clock = new FakeClock();
    const [a, b] = makeKeys(2);
    const s = await startInProcess(t, {
      keys: { plantid: [a!, b!] },
      clock,
      pools: { plantid: { strategy: 'fill-first' } },
    });
    assert.equal((await report(s.url, { keyId: keyIdOf(a!), status: 429, retryAfter: 17 })).status, 204);
    const row = await keyRow(s.url, keyIdOf(a!));
    assert.deepEqual(
      [row.status, row.reason, row.until, row.blockedUntil],
      ['blocked', 'reported 429', clock.now() + 17_000, clock.now() + 17_000],
    );
    clock.advance(16_999);
    assert.equal((await getJson(`${s.url}/api/plantid`)).body.key, b);
    clock.advance(1);
    assert.equal((await getJson(`${s.url}/api/plantid`)).body.key, a);
  });

  it('escalates the backoff on repeated 429s and resets it after a success', async (t) => {
    const clock = new FakeClock();
    const [a, b] = makeKeys(2);
    const s = await startInProcess(t, {
      keys: { plantid: [a!, b!] },
      clock,
      pools: { plantid: { strategy: 'fill-first' } },
    });
    const id = keyIdOf(a!);
    const blocks: number[] = [];
    for (let i = 0; i < 3; i++) {
      await report(s.url, { keyId: id, outcome: 'rate_limited' });
      const until = (await keyRow(s.url, id)).until!;
      blocks.push(until - clock.now());
      clock.nowMs = until;
      assert.equal((await getJson(`${s.url}/api/plantid`)).body.key, a); // the probe
    }
    assert.deepEqual(blocks, [60_000, 120_000, 240_000]);
    await report(s.url, { keyId: id, outcome: 'ok' });
    await report(s.url, { keyId: id, outcome: 'rate_limited' });
    assert.equal((await keyRow(s.url, id)).until! - clock.now(), 60_000);
  });

  it('one 5xx does not block a key; three within the window do', async (t) => {
    const clock = new FakeClock();
    const [a, b] = makeKeys(2);
    const s = await startInProcess(t, { keys: { plantid: [a!, b!] }, clock });
    const id = keyIdOf(a!);
    await report(s.url, { keyId: id, status: 503 });
    assert.deepEqual([(await keyRow(s.url, id)).status, (await keyRow(s.url, id)).failures], ['available', 1]);
    clock.advance(60_000);
    await report(s.url, { keyId: id, status: 500 });
    assert.equal((await keyRow(s.url, id)).status, 'available');
    clock.advance(60_000);
    await report(s.url, { keyId: id, outcome: 'error' });
    const row = await keyRow(s.url, id);
    assert.deepEqual([row.status, row.until], ['blocked', clock.now() + 60_000]);
    assert.match(row.reason!, /^3 errors in 300s/u);
  });

  it('a probing key goes to exactly one of 200 concurrent callers', async (t) => {
    const clock = new FakeClock();
    const [a, b] = makeKeys(2);
    const s = await startInProcess(t, { keys: { plantid: [a!, b!] }, clock });
    await report(s.url, { keyId: keyIdOf(a!), outcome: 'rate_limited', retryAfter: 5 });
    clock.advance(5000);
    assert.equal((await keyRow(s.url, keyIdOf(a!))).status, 'probing');
    const results = await Promise.all(Array.from({ length: 200 }, () => getJson(`${s.url}/api/plantid`)));
    assert.ok(results.every((r) => r.status === 200));
    assert.equal(results.filter((r) => r.body.key === a).length, 1);
    assert.equal(results.filter((r) => r.body.key === b).length, 199);
    const row = await keyRow(s.url, keyIdOf(a!));
    assert.deepEqual([row.status, row.reason, row.until], ['probing', 'probe in flight', clock.now() + 30_000]);
  });

  it('correlated 429s throttle the pool with 429 pool_throttled and leave the keys unmarked', async (t) => {
    const clock = new FakeClock();
    const keys = makeKeys(4);
    const s = await startInProcess(t, { keys: { plantid: keys }, clock });
    for (const k of keys.slice(0, 3)) {
      await report(s.url, { keyId: keyIdOf(k), status: 429, retryAfter: 8 });
      clock.advance(1000);
    }
    const r = await getJson(`${s.url}/api/plantid`);
    assert.equal(r.status, 429);
    assert.equal(r.body.error, 'pool_throttled');
    // Tripped by the third report, at +2 s, for the shortest Retry-After seen (8 s); now is +3 s.
    assert.equal(r.body.retryAfter, 7);
    assert.equal(r.headers.get('retry-after'), '7');
    const p = await poolStats(s.url);
    assert.deepEqual([p.available, p.blocked, p.throttledUntil], [4, 0, clock.now() + 7000]);
    assert.ok(p.keys.every((k) => k.status === 'available' && k.blockedUntil === null));
    clock.advance(7000);
    assert.equal((await getJson(`${s.url}/api/plantid`)).status, 200);
  });

  it('a perDay quota resets at Pacific midnight', async (t) => {
    const clock = new FakeClock(Date.parse('2026-11-21T07:58:00Z'));
    const [a] = makeKeys(1);
    const s = await startInProcess(t, {
      keys: { plantid: [a!] },
      clock,
      pools: { plantid: { limits: { perDay: 2 }, resetTimezone: 'America/Los_Angeles' } },
    });
    assert.equal((await getJson(`${s.url}/api/plantid`)).status, 200);
    assert.equal((await getJson(`${s.url}/api/plantid`)).status, 200);
    const out = await getJson(`${s.url}/api/plantid`);
    assert.deepEqual([out.status, out.body.retryAfter], [503, 120]);
    const row = await keyRow(s.url, keyIdOf(a!));
    assert.deepEqual([row.reason, row.until], ['quota: perDay 2/2', Date.parse('2026-11-21T08:00:00Z')]);
    clock.set('2026-11-21T08:00:00Z');
    assert.equal((await getJson(`${s.url}/api/plantid`)).status, 200);
    assert.equal((await keyRow(s.url, keyIdOf(a!))).served.day, 1);
  });

  it('the exhaustion forecast moves as load changes', async (t) => {
    const clock = new FakeClock(Date.parse('2026-11-21T02:00:00Z'));
    const s = await startInProcess(t, {
      keys: { plantid: makeKeys(2) },
      clock,
      pools: { plantid: { limits: { perDay: 500 } } },
    });
    assert.equal((await poolStats(s.url)).exhaustsAt, null);
    for (let m = 0; m < 30; m++) {
      for (let i = 0; i < 2; i++) await getJson(`${s.url}/api/plantid`);
      clock.advance(60_000);
    }
    // 60 handouts in 30 min = 2/min; 940 left → 470 min.
    const slow = (await poolStats(s.url)).exhaustsAt!;
    assert.equal(slow, clock.now() + 470 * 60_000);
    await Promise.all(Array.from({ length: 120 }, () => getJson(`${s.url}/api/plantid`)));
    // 180 in 30 min = 6/min; 820 left → 136.67 min: sooner.
    const fast = (await poolStats(s.url)).exhaustsAt!;
    assert.equal(fast, clock.now() + Math.ceil(820 / (180 / 1_800_000)));
    assert.ok(fast < slow);
  });
});
