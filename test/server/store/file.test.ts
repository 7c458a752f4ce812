import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { PoolState } from '../../../server/pool.js';
import { serializeState } from '../../../server/state.js';
import { FileStore } from '../../../server/store/file.js';
import { tempDir } from '../../helpers/tmp.js';

const pool = (total: number): Record<string, PoolState> => ({
  plantid: {
    current: 'aaaaaaaaaaaa',
    servedInTurn: 1,
    poolWindow: null,
    throttle: null,
    history: [],
    keys: {
      aaaaaaaaaaaa: { windows: {}, total, lastUsedAt: 1, block: null, exhausted: null, disabled: null, failures: [], backoffLevel: 0, probe: null },
    },
  },
});

describe('FileStore', () => {
  it('a missing file is a fresh start', async (t) => {
    const dir = await tempDir(t);
    assert.deepEqual(await new FileStore(join(dir, 'state.json')).load(), { kind: 'empty' });
  });

  it('saves atomically and loads back what it saved, leaving no temp files', async (t) => {
    const dir = await tempDir(t);
    const store = new FileStore(join(dir, 'state.json'));
    await store.save(() => [serializeState(pool(7), 1000)]);
    const loaded = await store.load();
    assert.equal(loaded.kind, 'loaded');
    assert.equal(loaded.kind === 'loaded' && loaded.state.pools.plantid!.keys.aaaaaaaaaaaa!.total, 7);
    assert.deepEqual(await readdir(dir), ['state.json']);
  });

  it('coalesces: while one write is in flight only the newest pending snapshot is written', async (t) => {
    const dir = await tempDir(t);
    const store = new FileStore(join(dir, 'state.json'));
    const writes = [1, 2, 3, 4, 5].map((n) => store.save(() => [serializeState(pool(n), n)]));
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
    await store.save(function* () {
      for (let i = 0; i < text.length; i += 7) {
        pulled++;
        yield text.slice(i, i + 7);
      }
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
    assert.equal(await readFile(`${path}.corrupt-2026-11-21T10-20-30-456Z`, 'utf8'), '{"version":1,"savedAt":1,"pools":{"plantid":');
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
