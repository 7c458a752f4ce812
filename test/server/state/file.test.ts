import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { PoolState } from '../../../server/pools/records.js';
import { FileStore } from '../../../server/state/file.js';
import type { SavePlan } from '../../../server/state/store.js';
import { tempDir } from '../../helpers/tmp.js';

const pool = (total: number): Record<string, PoolState> => ({
  plantid: {
    current: 'aaaaaaaaaaaa',
    servedInTurn: 1,
    poolWindow: null,
    throttle: null,
    history: [],
    keys: {
      aaaaaaaaaaaa: {
        windows: {},
        total,
        lastUsedAt: 1,
        block: null,
        exhausted: null,
        disabled: null,
        failures: [],
        backoffLevel: 0,
        probe: null,
      },
    },
  },
});

/** State text in format 1 (still read; the server writes format 2, built by the pools themselves). */
const serializeState = (pools: Record<string, PoolState>, savedAt: number): string =>
  JSON.stringify({ version: 1, savedAt, seq: 0, pools });

const fullOnly = (text: string): SavePlan => ({ full: () => [text], delta: () => null });

/** A state file text with one key's total and a sequence number. */
function stateText(seq: number, totals: Record<string, number>): string {
  const keys: Record<string, unknown> = {};
  for (const [id, total] of Object.entries(totals)) keys[id] = { ...pool(0).plantid!.keys.aaaaaaaaaaaa, total };
  return JSON.stringify({ version: 1, savedAt: seq, seq, pools: { plantid: { ...pool(0).plantid, keys } } });
}

describe('FileStore journal (big state)', () => {
  it('appends only what changed once the snapshot is big enough, and loads snapshot + journal', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'state.json');
    const store = new FileStore(path, Date.now, 10); // journal from 10 bytes of snapshot on
    await store.save({
      full: () => [stateText(1, { aaaaaaaaaaaa: 1, bbbbbbbbbbbb: 1 })],
      delta: () => [stateText(1, {})],
    });
    assert.deepEqual(await readdir(dir), ['state.json']); // first save: no snapshot yet, so full
    await store.save({ full: () => assert.fail('full'), delta: () => [stateText(2, { aaaaaaaaaaaa: 5 })] });
    await store.save({ full: () => assert.fail('full'), delta: () => [stateText(3, { bbbbbbbbbbbb: 7 })] });
    assert.deepEqual((await readdir(dir)).sort(), ['state.json', 'state.json.journal']);
    assert.equal((await readFile(join(dir, 'state.json.journal'), 'utf8')).split('\n').length, 3);
    const loaded = await new FileStore(path, Date.now, 10).load();
    assert.equal(loaded.kind, 'loaded');
    if (loaded.kind !== 'loaded') return;
    assert.deepEqual(loaded.dropped, []);
    assert.equal(loaded.state.seq, 3);
    assert.deepEqual(
      Object.entries(loaded.state.pools.plantid!.keys).map(([id, k]) => [id, k.total]),
      [
        ['aaaaaaaaaaaa', 5],
        ['bbbbbbbbbbbb', 7],
      ],
    );
  });

  it('folds the journal into a new snapshot once it outgrows the snapshot; entries older than the snapshot are skipped', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'state.json');
    const store = new FileStore(path, Date.now, 10);
    await store.save(fullOnly(stateText(1, { aaaaaaaaaaaa: 1 })));
    let fulls = 0;
    for (let seq = 2; seq < 8; seq++) {
      await store.save({
        full: () => (fulls++, [stateText(seq, { aaaaaaaaaaaa: seq })]),
        delta: () => [stateText(seq, { aaaaaaaaaaaa: seq })],
      });
    }
    assert.ok(fulls >= 1, 'compacted');
    const { journalBytes, snapshotBytes } = await store.sizes();
    assert.ok(journalBytes <= 2 * snapshotBytes + snapshotBytes);
    // A crash between writing a snapshot and deleting the journal leaves older entries behind: they must not apply.
    await writeFile(join(dir, 'state.json'), stateText(9, { aaaaaaaaaaaa: 9 }));
    await writeFile(join(dir, 'state.json.journal'), `${stateText(8, { aaaaaaaaaaaa: 8 })}\n`);
    const loaded = await new FileStore(path).load();
    assert.equal(loaded.kind === 'loaded' && loaded.state.pools.plantid!.keys.aaaaaaaaaaaa!.total, 9);
  });

  it('ignores a torn last entry and stops at an unreadable one, saying so', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'state.json');
    await writeFile(path, stateText(1, { aaaaaaaaaaaa: 1 }));
    await writeFile(
      `${path}.journal`,
      `${stateText(2, { aaaaaaaaaaaa: 2 })}\n${stateText(3, { aaaaaaaaaaaa: 3 }).slice(0, 40)}`,
    );
    let loaded = await new FileStore(path).load();
    assert.equal(loaded.kind === 'loaded' && loaded.state.pools.plantid!.keys.aaaaaaaaaaaa!.total, 2);
    assert.match(loaded.kind === 'loaded' ? loaded.dropped.join() : '', /last entry was cut short/u);
    await writeFile(
      `${path}.journal`,
      `${stateText(2, { aaaaaaaaaaaa: 2 })}\ngarbage\n${stateText(4, { aaaaaaaaaaaa: 4 })}\n`,
    );
    loaded = await new FileStore(path).load();
    assert.equal(loaded.kind === 'loaded' && loaded.state.pools.plantid!.keys.aaaaaaaaaaaa!.total, 2);
    assert.match(
      loaded.kind === 'loaded' ? loaded.dropped.join() : '',
      /journal entry 2 is unreadable .* later entries were not applied/u,
    );
  });

  it('a corrupt snapshot is moved aside together with its journal', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'state.json');
    await writeFile(path, '{oops');
    await writeFile(`${path}.journal`, `${stateText(2, { aaaaaaaaaaaa: 2 })}\n`);
    const loaded = await new FileStore(path, () => 0).load();
    assert.equal(loaded.kind, 'quarantined');
    assert.deepEqual((await readdir(dir)).sort(), [
      'state.json.corrupt-1970-01-01T00-00-00-000Z',
      'state.json.corrupt-1970-01-01T00-00-00-000Z.journal',
    ]);
  });
});

describe('FileStore', () => {
  it('a missing file is a fresh start', async (t) => {
    const dir = await tempDir(t);
    assert.deepEqual(await new FileStore(join(dir, 'state.json')).load(), { kind: 'empty' });
  });

  it('saves atomically and loads back what it saved, leaving no temp files', async (t) => {
    const dir = await tempDir(t);
    const store = new FileStore(join(dir, 'state.json'));
    await store.save(fullOnly(serializeState(pool(7), 1000)));
    const loaded = await store.load();
    assert.equal(loaded.kind, 'loaded');
    assert.equal(loaded.kind === 'loaded' && loaded.state.pools.plantid!.keys.aaaaaaaaaaaa!.total, 7);
    assert.deepEqual(await readdir(dir), ['state.json']);
  });

  it('coalesces: while one write is in flight only the newest pending snapshot is written', async (t) => {
    const dir = await tempDir(t);
    const store = new FileStore(join(dir, 'state.json'));
    const writes = [1, 2, 3, 4, 5].map((n) => store.save(fullOnly(serializeState(pool(n), n))));
    await Promise.all(writes);
    const saved = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8'));
    assert.equal(saved.pools.plantid.keys.aaaaaaaaaaaa.total, 5);
    assert.equal(saved.savedAt, 5);
  });

  it('writes a source given in pieces, pulling them lazily', async (t) => {
    const dir = await tempDir(t);
    const store = new FileStore(join(dir, 'state.json'));
    const text = serializeState(pool(3), 9);
    let pulled = 0;
    await store.save({
      *full() {
        for (let i = 0; i < text.length; i += 7) {
          pulled++;
          yield text.slice(i, i + 7);
        }
      },
      delta: () => null,
    });
    assert.equal(await readFile(join(dir, 'state.json'), 'utf8'), text);
    assert.equal(pulled, Math.ceil(text.length / 7));
  });

  it('quarantines a corrupt file instead of overwriting it', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'state.json');
    await writeFile(path, '{"version":1,"savedAt":1,"pools":{"plantid":');
    const store = new FileStore(path, () => Date.parse('2026-11-21T10:20:30.456Z'));
    const loaded = await store.load();
    assert.equal(loaded.kind, 'quarantined');
    assert.equal(loaded.kind === 'quarantined' && loaded.movedTo, `${path}.corrupt-2026-11-21T10-20-30-456Z`);
    assert.match(loaded.kind === 'quarantined' ? loaded.error : '', /^not valid JSON/u);
    assert.deepEqual(await readdir(dir), ['state.json.corrupt-2026-11-21T10-20-30-456Z']);
    assert.equal(
      await readFile(`${path}.corrupt-2026-11-21T10-20-30-456Z`, 'utf8'),
      '{"version":1,"savedAt":1,"pools":{"plantid":',
    );
  });

  it('quarantines a file of another version or shape', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'state.json');
    await writeFile(path, JSON.stringify({ version: 99, savedAt: 1, pools: {} }));
    const loaded = await new FileStore(path).load();
    assert.equal(loaded.kind, 'quarantined');
    assert.match(loaded.kind === 'quarantined' ? loaded.error : '', /unsupported state version 99/u);
  });
});
