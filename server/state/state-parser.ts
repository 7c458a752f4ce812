import type { PoolState } from '../pools/records.js';
import { CorruptStateError } from './errors.js';
import type { StateFile } from './format.js';
import { finishState, PoolReader, readEnvelope, readState, type Envelope } from './read-state.js';

/**
 * A state file's text read as it arrives, in pieces of any size (`feed`, then `end`), without
 * ever holding the whole text or its whole JSON tree: the envelope and each pool's header are
 * parsed as JSON, and each key entry is parsed and read into a key's state (read-state.ts) as
 * soon as its text is complete, then let go. A million keys' file then costs the memory of the
 * key states it gives, not of its 90 MB of text and of a million parsed entries besides.
 *
 * It takes files laid out as this server writes them (format.ts): the envelope's fields before
 * `pools`, each pool's `keys` last in it, no name twice. Anything else that is JSON (a file made
 * by hand, a reordered export) throws NotStreamable, and the caller reads the text whole
 * (`readWhole`), which gives the same answer the slow way; text that is not JSON throws
 * SyntaxError. A key entry that is not JSON costs only itself (read-state.ts drops it).
 */

/** The text is JSON this parser does not take as it streams; read it whole instead. */
export class NotStreamable extends Error {
  constructor(why: string) {
    super(`not laid out as a saved state file (${why})`);
    this.name = 'NotStreamable';
  }
}

export interface ParsedState {
  state: StateFile;
  dropped: string[];
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;
/** A scan that ran into the end of the text so far: wait for more. */
const MORE = -1;

const bad = (at: number) => new SyntaxError(`unexpected text at position ${at}`);

function skipSpace(t: string, i: number): number {
  for (let c = t.charCodeAt(i); c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09; c = t.charCodeAt(++i));
  return i;
}

/** Where the string whose opening quote is at `i` ends (just past its closing quote), or MORE. */
function stringEnd(t: string, i: number): number {
  for (let j = i + 1; j < t.length; j++) {
    const c = t.charCodeAt(j);
    if (c === BACKSLASH) j++;
    else if (c === QUOTE) return j + 1;
  }
  return MORE;
}

/** Where the value starting at `i` ends, or MORE; a number or literal at the text's end is whole only at its `last`. */
function valueEnd(t: string, i: number, last: boolean): number {
  const first = t.charCodeAt(i);
  if (first === QUOTE) return stringEnd(t, i);
  if (first !== OPEN_BRACE && first !== OPEN_BRACKET) {
    for (let j = i; j < t.length; j++) {
      const c = t.charCodeAt(j);
      if (c === COMMA || c === CLOSE_BRACE || c === CLOSE_BRACKET) return j;
    }
    return last ? t.length : MORE;
  }
  let depth = 0;
  for (let j = i; j < t.length; j++) {
    const c = t.charCodeAt(j);
    if (c === QUOTE) {
      j = stringEnd(t, j) - 1;
      if (j < 0) return MORE;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
    else if ((c === CLOSE_BRACE || c === CLOSE_BRACKET) && --depth === 0) return j + 1;
  }
  return MORE;
}

/** A member's name: a keyId has no escapes, so most names are plain slices. */
function nameText(t: string, start: number, end: number): string {
  const inner = t.slice(start + 1, end - 1);
  return inner.includes('\\') ? (JSON.parse(t.slice(start, end)) as string) : inner;
}

/** Sets a member as JSON.parse does: an own property, even one named `__proto__`. */
function put(o: Record<string, unknown>, name: string, value: unknown): void {
  Object.defineProperty(o, name, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * Pool names JavaScript treats apart from others in an object: an array index (ordered before
 * the rest) or `__proto__`. Files with pools named so are read whole, as they always were.
 */
const SPECIAL_NAME = /^(?:0|[1-9]\d{0,9}|__proto__)$/u;

/** Nesting levels of the objects the parser walks into. */
const TOP = 0;
const POOLS = 1;
const POOL = 2;
const KEYS = 3;
const BEFORE = -1;
const DONE = 4;

/**
 * The walk: `level` says how deep the parser is (the envelope, `pools`, a pool, its `keys`) and
 * `phase` what it expects next there (a member's name, its colon, its value, then a comma or the
 * closing brace). A value it does not walk into is read whole once its text is complete
 * (`member`); until then the parser waits for the next piece, keeping only the text from there on.
 */
export class StateParser {
  private text = '';
  private at = 0;
  private level = BEFORE;
  private phase: 'name' | 'colon' | 'value' | 'next' = 'name';
  private first = true;
  /** The member name being read at each level. */
  private readonly names = ['', '', '', ''];
  private readonly top: Record<string, unknown> = {};
  private envelope: Envelope | null = null;
  private poolsDone = false;
  private readonly pools: Record<string, PoolState> = {};
  private readonly poolNames = new Set<string>();
  private fields: Record<string, unknown> = {};
  private reader: PoolReader | null = null;
  private droppedIds = new Set<string>();
  private readonly dropped: string[] = [];
  /** The most text held at once (for tests: it stays near a piece's size, whatever the file's). */
  maxHeld = 0;

  constructor(private readonly now: number) {}

  /** Takes the next piece of the text. */
  feed(piece: string): void {
    this.text = this.at < this.text.length ? this.text.slice(this.at) + piece : piece;
    this.at = 0;
    this.maxHeld = Math.max(this.maxHeld, this.text.length);
    this.run(false);
  }

  /** The state read, or null for a text of nothing but white space. */
  end(): ParsedState | null {
    this.run(true);
    if (this.level === BEFORE) return null;
    if (this.level !== DONE) throw new SyntaxError('unexpected end of the text');
    if (!this.envelope) return readState(this.top, this.now); // no pools member: readState says what is wrong
    return finishState(this.envelope, this.pools, this.dropped, this.now);
  }

  private run(last: boolean): void {
    const t = this.text;
    for (;;) {
      const i = skipSpace(t, this.at);
      this.at = i;
      if (i >= t.length) return;
      const c = t.charCodeAt(i);
      if (this.level === BEFORE) {
        if (c !== OPEN_BRACE) throw new NotStreamable('not an object');
        this.open(TOP, i);
      } else if (this.level === DONE) throw bad(i);
      else if (this.phase === 'name') {
        if (c === CLOSE_BRACE && this.first) this.close(i);
        else if (c !== QUOTE) throw bad(i);
        else {
          const end = stringEnd(t, i);
          if (end === MORE) return;
          this.names[this.level] = nameText(t, i, end);
          this.phase = 'colon';
          this.at = end;
        }
      } else if (this.phase === 'colon') {
        if (c !== COLON) throw bad(i);
        this.phase = 'value';
        this.at = i + 1;
      } else if (this.phase === 'value') {
        if (c === OPEN_BRACE && this.walksInto()) this.open(this.level + 1, i);
        else {
          const end = valueEnd(t, i, last);
          if (end === MORE) return;
          this.member(t.slice(i, end));
          this.phase = 'next';
          this.at = end;
        }
      } else if (c === COMMA) {
        this.phase = 'name';
        this.first = false;
        this.at = i + 1;
      } else if (c === CLOSE_BRACE) this.close(i);
      else throw bad(i);
    }
  }

  /** Whether the object starting here is walked into member by member (else read as one value). */
  private walksInto(): boolean {
    const name = this.names[this.level]!;
    if (this.level === TOP) return name === 'pools';
    return this.level === POOLS || (this.level === POOL && name === 'keys');
  }

  private open(level: number, at: number): void {
    if (level === POOLS) {
      if (this.poolsDone) throw new NotStreamable('pools twice');
      try {
        this.envelope = readEnvelope({ ...this.top, pools: {} });
      } catch {
        // Said by readEnvelope over the whole text, which may hold more envelope fields after pools.
        throw new NotStreamable('its envelope');
      }
    } else if (level === POOL) {
      const name = this.names[POOLS]!;
      this.newPool(name);
      this.fields = {};
      this.reader = null;
    } else if (level === KEYS) {
      if (this.reader) throw new NotStreamable('keys twice');
      this.reader = new PoolReader(
        this.names[POOLS]!,
        this.envelope!.version,
        { ...this.fields, keys: {} },
        this.dropped,
      );
      this.droppedIds = new Set();
    }
    this.level = level;
    this.phase = 'name';
    this.first = true;
    this.at = at + 1;
  }

  /** A pool's entry begins: a name seen before, or one JavaScript orders apart, is read whole. */
  private newPool(name: string): void {
    if (this.poolNames.has(name) || SPECIAL_NAME.test(name)) throw new NotStreamable(`pool ${name}`);
    this.poolNames.add(name);
  }

  private close(at: number): void {
    const level = this.level;
    if (level === POOLS) this.poolsDone = true;
    else if (level === POOL) {
      const name = this.names[POOLS]!;
      const pool = (this.reader ?? new PoolReader(name, this.envelope!.version, this.fields, this.dropped)).finish();
      if (pool) this.pools[name] = pool;
    }
    this.level = level === TOP ? DONE : level - 1;
    this.phase = 'next';
    this.at = at + 1;
  }

  /** A member read as one value: an envelope field, a pool that is no object, a header field, a key entry. */
  private member(text: string): void {
    const name = this.names[this.level]!;
    if (this.level === KEYS) {
      const reader = this.reader!;
      if (!reader.readable) return; // its pool was dropped: nothing in it is read
      if (reader.has(name) || this.droppedIds.has(name)) throw new NotStreamable(`key ${name} twice`);
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch {
        raw = text; // no key entry: read-state.ts drops it, with the others read
      }
      if (!reader.key(name, raw)) this.droppedIds.add(name);
      return;
    }
    const value = JSON.parse(text) as unknown;
    if (this.level === TOP) {
      if (this.poolsDone) throw new NotStreamable(`${name} after pools`);
      put(this.top, name, value);
    } else if (this.level === POOLS) {
      this.newPool(name);
      const pool = new PoolReader(name, this.envelope!.version, value, this.dropped).finish();
      if (pool) this.pools[name] = pool; // a pool entry that is no object is dropped, said why
    } else {
      if (this.reader) throw new NotStreamable(`${name} after keys`);
      put(this.fields, name, value);
    }
  }
}

/**
 * A state file's whole text read the slow way (JSON.parse, then read-state.ts): for what the
 * parser does not stream. Throws CorruptStateError for text that is not JSON.
 */
export function readWhole(text: string, now: number): ParsedState {
  let raw: unknown;
  try {
    raw = JSON.parse(text) as unknown;
  } catch (err) {
    throw new CorruptStateError(`not valid JSON (${(err as Error).message})`);
  }
  return readState(raw, now);
}

/**
 * Parses a state file's text: streamed through the parser in one piece, or read whole when it
 * is laid out otherwise or is not JSON (JSON.parse then says what is wrong). Throws
 * CorruptStateError when the file as a whole is unusable; a bad pool or key entry is dropped and
 * reported in `dropped` instead, so one bad entry costs only itself.
 */
export function deserializeState(text: string, now = Date.now()): ParsedState {
  try {
    const parser = new StateParser(now);
    parser.feed(text);
    const parsed = parser.end();
    if (parsed) return parsed;
  } catch (err) {
    if (!(err instanceof NotStreamable || err instanceof SyntaxError)) throw err;
  }
  return readWhole(text, now);
}
