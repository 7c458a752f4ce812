import assert from 'node:assert/strict';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadPools } from '../../../server/config.js';
import { KeyFiles } from '../../../server/keys/key-files.js';
import { PoolRegistry } from '../../../server/pools/registry.js';
import { FileBackend } from '../../../server/state/file-backend.js';
import { FileStore } from '../../../server/state/file.js';
import { MemoryStore } from '../../../server/state/memory.js';
import { Pool } from '../../../server/pools/pool.js';
import { DEFAULT_POLICY } from '../../../server/pools/policy.js';
import { getJson, makeLayout, startInProcess } from '../../helpers/server.js';
import { keyIdOf } from '../../../shared/keys.js';
import { FakeClock } from '../../helpers/clock.js';
import { lines, makeKeys } from '../../helpers/keys.js';
import { memoryLogger } from '../../helpers/logs.js';
import { tempDir } from '../../helpers/tmp.js';

async function setup(dir: string, clock: FakeClock) {
  const { logger } = memoryLogger();
  const keysDir = join(dir, 'keys');
  const store = new FileStore(join(dir, 'state.json'), clock.now, 1); // journal from the first byte of snapshot
  const backend = new FileBackend(store, { clock: clock.now, logger, intervalMs: 0 });
  const registry = new PoolRegistry({
    policies: (await loadPools(keysDir)).policies,
    clock: clock.now,
    keyFilePath: (name) => join(keysDir, `${name}.txt`),
    createPool: backend.createPool.bind(backend),
  });
  await new KeyFiles({ keysDir, registry, logger }).loadAll();
  await backend.resume();
  return { registry, store, saver: backend };
}

describe('saver with the in-memory store', () => {
  it('a server stopped and started again on the same store resumes its counts', async (t) => {
    const store = new MemoryStore();
    const keys = makeKeys(2);
    const layout = await makeLayout(t, { plantid: keys });
    const first = await startInProcess(t, { layout, store });
    for (let i = 0; i < 5; i++) await getJson(`${first.url}/api/plantid`);
    await first.stop();
    assert.equal(store.saves >= 1, true);
    const second = await startInProcess(t, { layout, store });
    const stats = (await getJson(`${second.url}/api/stats`)).body;
    assert.deepEqual(
      stats.pools[0].keys.map((k: { served: { total: number } }) => k.served.total),
      [3, 2],
    );
    assert.equal((await getJson(`${second.url}/api/plantid`)).body.key, keys[1]); // rotation resumes too
  });
});

describe('saver with the journal', () => {
  it('saves deltas between snapshots, and a restart sees exactly the live state', async (t) => {
    const dir = await tempDir(t);
    const clock = new FakeClock(Date.parse('2026-11-21T10:00:00Z'));
    const keys = makeKeys(40);
    await mkdir(join(dir, 'keys'));
    await writeFile(join(dir, 'keys', 'plantid.txt'), keys.join('\n'));
    const a = await setup(dir, clock);
    await a.saver.saveNow(); // first save: a snapshot
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 7; i++) await a.registry.handout('plantid');
      await a.registry.report('plantid', {
        keyId: keyIdOf(keys[round]!),
        outcome: round % 2 ? 'rate_limited' : 'error',
      });
      clock.advance(20_000);
      await a.saver.saveNow();
      if (round === 2) {
        const journal = await readFile(join(dir, 'state.json.journal'), 'utf8');
        assert.equal(journal.split('\n').length, 4, 'three journal entries after three saves');
        assert.ok(
          journal.split('\n')[0]!.length < (await readFile(join(dir, 'state.json'), 'utf8')).length / 2,
          'an entry is much smaller than the snapshot',
        );
      }
    }

    const live = await a.registry.stats({ version: '', uptimeSec: 0 }, { keys: 'all' });
    const b = await setup(dir, clock);
    assert.deepEqual(await b.registry.stats({ version: '', uptimeSec: 0 }, { keys: 'all' }), live);

    // A forced (shutdown) save folds everything into one snapshot.
    await b.saver.saveNow({ final: true });
    assert.deepEqual((await b.store.sizes()).journalBytes, 0);
    const c = await setup(dir, clock);
    assert.deepEqual(await c.registry.stats({ version: '', uptimeSec: 0 }, { keys: 'all' }), live);
  });
});

describe('reservations for many keys', () => {
  for (const serving of [true, false])
    it(
      `a fresh 10,000-key round-robin pool with limits reserves for every key in one save, ` +
        (serving ? 'made at start, before any request' : 'made at the first request (the CLI resumes so)'),
      async (t) => {
        const dir = await tempDir(t);
        const clock = new FakeClock(Date.parse('2026-11-21T10:00:00Z'));
        await mkdir(join(dir, 'keys'));
        await writeFile(join(dir, 'keys', 'plantid.txt'), makeKeys(10_000).join('\n'));
        await writeFile(join(dir, 'keys', 'pools.json'), JSON.stringify({ plantid: { limits: { perDay: 1000 } } }));
        const { logger } = memoryLogger();
        const store = new MemoryStore();
        const backend = new FileBackend(store, { clock: clock.now, logger, intervalMs: 0 });
        const registry = new PoolRegistry({
          policies: (await loadPools(join(dir, 'keys'))).policies,
          clock: clock.now,
          keyFilePath: (name) => join(dir, 'keys', `${name}.txt`),
          createPool: backend.createPool.bind(backend),
          reserve: () => backend.reserve(),
        });
        await new KeyFiles({ keysDir: join(dir, 'keys'), registry, logger }).loadAll();
        await backend.resume({ serving });
        assert.equal(store.saves, serving ? 1 : 0, 'saves made by the start');
        const pool = (await registry.withPool('plantid', (p) => p)) as Pool;
        if (serving) assert.equal(pool.handout(clock.now()).ok, true, 'the first request finds its block saved');
        const seen = new Set<string>();
        for (let i = 0; i < 10_000; i++) {
          const h = await registry.handout('plantid');
          assert.ok(h.ok);
          seen.add(h.keyId);
        }
        assert.equal(seen.size, 10_000, 'round-robin: every key once');
        assert.equal(store.saves, 1, `${store.saves} saves for the first round of 10,000 keys`);
        // Every key's reservation is durable: the saved state covers each key's use (20 ahead: 1/50 of 1,000).
        const saved = JSON.parse(store.text!) as {
          pools: { plantid: { keys: Record<string, { reserved?: number }> } };
        };
        const reserved = Object.values(saved.pools.plantid.keys).map((k) => k.reserved ?? 0);
        assert.equal(reserved.length, 10_000);
        assert.ok(
          reserved.every((r) => r >= 1),
          'a key served without a saved reservation',
        );
      },
    );

  it("a key waiting for its reservation's save is skipped while another key has room; fill-first waits instead", () => {
    const now = Date.parse('2026-11-21T10:00:00Z');
    const keys = makeKeys(3);
    const ids = keys.map(keyIdOf);
    const make = (strategy: 'round-robin' | 'fill-first') => {
      // Blocks of 2 (1/50 of 100): a key needs a save every couple of handouts.
      const pool = new Pool('p', { ...DEFAULT_POLICY, strategy, limits: { perDay: 100 } }, { reservations: true });
      pool.setKeys(lines(keys), now);
      return pool;
    };
    const saveAll = (pool: Pool) => {
      for (const rec of pool.drain(true).records) rec.reserved = rec.reserveTo;
      pool.reservationsSaved(now);
    };
    const room = (pool: Pool) => pool.takeAll().records.filter((r) => r.reserved > r.total).length;

    const rr = make('round-robin');
    assert.equal(rr.handout(now).ok, false); // a fresh pool: one save for every key's first block
    saveAll(rr);
    let served = 0;
    for (let i = 0; i < 12; i++) {
      const hadRoom = room(rr);
      const h = rr.handout(now);
      if (h.ok) served++;
      // Never a wait while any key has room (nothing is saved meanwhile).
      else assert.deepEqual([h.reason, hadRoom], ['reserving', 0], `handout ${i}`);
    }
    assert.ok(served >= 6, `${served} served from the first blocks of 3 keys`);
    saveAll(rr);
    assert.equal(rr.handout(now).ok, true, 'the held keys are back once the save lands');

    const ff = make('fill-first');
    ff.handout(now);
    saveAll(ff);
    // Its first key reserved 3 (the use that asked, and a block of 2): served 3 times, then it waits.
    const first = [ff.handout(now), ff.handout(now), ff.handout(now), ff.handout(now)];
    assert.deepEqual(
      first.map((h) => (h.ok ? ids.indexOf(h.keyId) : h.reason)),
      [0, 0, 0, 'reserving'],
      'fill-first keeps to its first key and waits for its save, though the others have room',
    );
    assert.ok(room(ff) >= 2);
  });
});
