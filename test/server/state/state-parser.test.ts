/**
 * The streaming reader of state files (state/state-parser.ts): whatever the pieces the text
 * arrives in, it gives what reading the text whole gives (JSON.parse, then read-state.ts), holds
 * no more than about a piece of the text at once, and hands what it does not stream (a file laid
 * out by hand, text that is not JSON) to the whole reader.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { KEY_FIELDS } from '../../../server/pools/fields.js';
import { emptyKeyState, type KeyState } from '../../../server/pools/records.js';
import { WindowClock } from '../../../server/pools/windows.js';
import { stateJsonChunks } from '../../../server/state/format.js';
import { FileStore } from '../../../server/state/file.js';
import { deserializeState, NotStreamable, readWhole, StateParser } from '../../../server/state/state-parser.js';
import { fieldSamples, type FieldSamples } from '../../helpers/field-samples.js';

const NOW = Date.UTC(2026, 11, 4, 12);
/** A value of each kind away from its default, plausible at NOW, with text JSON must escape. */
const SAMPLES: FieldSamples = {
  ...fieldSamples(NOW),
  hold: { until: NOW + 60_000, reason: 'held: "quoted" and {braced}' },
  disabled: { reason: 'disabled, ünïcödé ✓', lineHash: 'abcdef012345' },
};

const keyId = (i: number) => i.toString(16).padStart(12, '0');

/** `n` keys' states, each with one field of the table away from its default in turn, and counts. */
function keyStates(n: number): Map<string, KeyState> {
  const keys = new Map<string, KeyState>();
  for (let i = 0; i < n; i++) {
    const f = KEY_FIELDS[i % KEY_FIELDS.length]!;
    const used = i % 3 === 0 ? 0 : (i % 50) + 1;
    const state: KeyState = { ...emptyKeyState(), total: used * 7, lastUsedAt: used ? NOW - i : null };
    if (used) state.windows = { day: { start: Date.UTC(2026, 11, 4), count: used } };
    keys.set(keyId(i), i % 5 === 0 ? state : { ...state, [f.name]: SAMPLES[f.kind] });
  }
  return keys;
}

/** A state file's text as the server writes it: pools with headers of every kind and `n` keys in the first. */
function stateText(n: number): string {
  const header = (extra: object) => ({
    current: keyId(1),
    servedInTurn: 2,
    poolWindow: { start: NOW - 1_000, count: 4 },
    throttle: null,
    history: [{ start: NOW - 60_000, count: 9 }],
    seq: { used: 12, seen: 3 },
    upstreamSync: { ok: false, at: NOW - 9_000, error: 'HTTP 503' },
    ...extra,
  });
  const pools = [
    {
      name: 'plantid',
      header: header({
        pins: { 'token "with" {braces} \\ and \u2713': [keyId(2), NOW - 1], custom_7: null },
        apps: { keys: { handouts: 1, spent: 2, windows: { day: { start: NOW - 5, count: 2 } }, lastSeenAt: NOW - 5 } },
      }),
      keys: keyStates(n),
    },
    { name: 'crop-health', header: header({}), keys: keyStates(7) },
    { name: 'empty', header: header({ current: null }), keys: new Map<string, KeyState>() },
  ];
  const drains = pools.map(({ name, header, keys }) => ({
    name,
    clock: new WindowClock('UTC'),
    drain: () => ({ header: header as never, records: [], retired: keys }),
  }));
  return [...stateJsonChunks(NOW, 5, drains, () => undefined)].join('');
}

/** The text fed in pieces of `size` characters. */
function fedInPieces(text: string, size: number) {
  const parser = new StateParser(NOW);
  for (let i = 0; i < text.length; i += size) parser.feed(text.slice(i, i + size));
  return parser.end();
}

/** What reading or streaming gives, or the error it throws, for comparing. */
function outcome(read: () => unknown): unknown {
  try {
    return { value: read() };
  } catch (err) {
    return { error: (err as Error).name, message: (err as Error).message };
  }
}

describe('state files streamed', () => {
  const dirs: string[] = [];
  after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  it('gives what reading the text whole gives, whatever the pieces', () => {
    const text = stateText(300);
    const whole = readWhole(text, NOW);
    assert.equal(Object.keys(whole.state.pools.plantid!.keys).length, 300);
    assert.ok(whole.dropped.length === 0, whole.dropped.join('\n'));
    for (const size of [1, 2, 3, 7, 64, 1000, text.length])
      assert.deepEqual(fedInPieces(text, size), whole, `pieces of ${size}`);
  });

  it('reads what it does not stream whole, with the same answer: reordered, repeated, dropped, not JSON', () => {
    const good = JSON.parse(stateText(20)) as { pools: Record<string, Record<string, unknown>> };
    const plant = good.pools.plantid!;
    const keysFirst = { ...good, pools: { plantid: { keys: plant.keys, ...plant } } };
    const texts = {
      canonical: JSON.stringify(good),
      pretty: JSON.stringify(good, null, 2),
      'keys before the header': JSON.stringify(keysFirst),
      'pools before the version': JSON.stringify({ pools: good.pools, version: 2, savedAt: NOW }),
      'a version after the pools': JSON.stringify(good).slice(0, -1) + ',"version":2}',
      'a key twice': JSON.stringify(good).replace(`"${keyId(1)}":`, `"${keyId(3)}":`),
      'a pool twice': `{"version":2,"savedAt":1,"pools":{"a":{"keys":{}},"a":{"current":5,"keys":{}}}}`,
      'pools named as numbers': `{"version":2,"savedAt":1,"pools":{"2":{"keys":{}},"1":{"current":null,"keys":{}}}}`,
      'a pool that is no object': `{"version":2,"savedAt":1,"pools":{"a":[],"b":{"keys":[]},"c":{}}}`,
      'a pool named __proto__': `{"version":2,"savedAt":1,"pools":{"__proto__":{"keys":{}}}}`,
      'bad keyIds and entries': JSON.stringify({
        ...good,
        pools: { p: { ...plant, keys: { nope: {}, [keyId(1)]: { total: -1 }, [keyId(2)]: 5 } } },
      }),
      'version 1': JSON.stringify({ version: 1, savedAt: NOW, pools: { p: { ...plant, keys: {} } } }),
      'version 9': JSON.stringify({ ...good, version: 9 }),
      foreign: '{"plantid":{"current_index":2}}',
      'no pools': '{"version":2,"savedAt":1}',
      'an array': '[]',
      'not JSON': 'nope',
      'cut short': JSON.stringify(good).slice(0, 500),
      'text after it': JSON.stringify(good) + ' x',
      'a trailing comma': '{"version":2,"savedAt":1,"pools":{},}',
    };
    for (const [what, text] of Object.entries(texts)) {
      const expected = outcome(() => readWhole(text, NOW));
      assert.deepEqual(
        outcome(() => deserializeState(text, NOW)),
        expected,
        what,
      );
      assert.deepEqual(
        outcome(() => {
          try {
            return fedInPieces(text, 5) ?? readWhole(text, NOW);
          } catch (err) {
            if (err instanceof NotStreamable || err instanceof SyntaxError) return readWhole(text, NOW);
            throw err;
          }
        }),
        expected,
        `${what}, in pieces`,
      );
    }
    // Only what the server writes streams; the rest says so and is read whole.
    assert.doesNotThrow(() => fedInPieces(texts.pretty, 5));
    assert.throws(() => fedInPieces(texts['keys before the header'], 5), NotStreamable);
  });

  it('costs one bad key entry only itself, as before', () => {
    const text = `{"version":2,"savedAt":${NOW},"pools":{"p":{"current":null,"servedInTurn":0,"poolWindow":null,"throttle":null,"windowStarts":{"minute":0,"hour":0,"day":0,"month":0},"keys":{"${keyId(1)}":{"total":oops},"${keyId(2)}":{"total":1,"lastUsedAt":null,"counts":[0,0,0,0]}}}}}`;
    const { state, dropped } = deserializeState(text, NOW);
    assert.deepEqual(Object.keys(state.pools.p!.keys), [keyId(2)]);
    assert.equal(dropped.length, 1);
    assert.match(dropped[0]!, new RegExp(`^pool p, key ${keyId(1)}: `, 'u'));
  });

  it('loads a 100,000-key state file as it streams in, equal to reading it whole', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kw-stream-'));
    dirs.push(dir);
    const path = join(dir, 'state.json');
    const writer = new FileStore(path, () => NOW);
    const written = stateText(100_000);
    await writer.save({ full: () => [written], delta: () => null });
    const text = await readFile(path, 'utf8');
    assert.equal(text, written);

    const store = new FileStore(path, () => NOW);
    store.readPieceBytes = 64 * 1024;
    const loaded = await store.load();
    assert.equal(loaded.kind, 'loaded');
    const whole = readWhole(text, NOW);
    assert.deepEqual(loaded.kind === 'loaded' && { state: loaded.state, dropped: loaded.dropped }, whole);
    assert.equal(Object.keys(whole.state.pools.plantid!.keys).length, 100_000);
    const read = store.lastRead!;
    assert.equal(read.streamed, true);
    assert.ok(read.pieces >= text.length / (64 * 1024), `${read.pieces} pieces`);
    // Never much more than a piece of the file's text at once (an entry's worth carried over).
    assert.ok(read.maxHeldChars < 64 * 1024 + 1024, `${read.maxHeldChars} characters held of ${text.length}`);
  });
});
