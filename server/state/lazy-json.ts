/**
 * A state file read without building its whole JSON tree: the envelope and every pool's header are
 * parsed as usual, but each pool's `keys` becomes an object of the key entries' JSON texts, parsed
 * one at a time as they are read (format.ts). A million keys then never exist as a million parsed
 * objects at once beside the records made from them. Throws SyntaxError on text that is not JSON
 * (the caller parses it whole again for the error's message).
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

const bad = (at: number) => new SyntaxError(`unexpected text at position ${at}`);

function skipSpace(t: string, i: number): number {
  for (let c = t.charCodeAt(i); c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09; c = t.charCodeAt(++i));
  return i;
}

/** Where the string starting at `i` (its opening quote) ends, just past its closing quote. */
function stringEnd(t: string, i: number): number {
  for (let j = i + 1; j < t.length; j++) {
    const c = t.charCodeAt(j);
    if (c === BACKSLASH) j++;
    else if (c === QUOTE) return j + 1;
  }
  throw bad(i);
}

/** Where the value starting at `i` ends. */
function valueEnd(t: string, i: number): number {
  const first = t.charCodeAt(i);
  if (first === QUOTE) return stringEnd(t, i);
  if (first !== OPEN_BRACE && first !== OPEN_BRACKET) {
    let j = i;
    for (let c = t.charCodeAt(j); j < t.length && c !== COMMA && c !== CLOSE_BRACE && c !== CLOSE_BRACKET;)
      c = t.charCodeAt(++j);
    return j;
  }
  let depth = 0;
  for (let j = i; j < t.length; j++) {
    const c = t.charCodeAt(j);
    if (c === QUOTE) j = stringEnd(t, j) - 1;
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
    else if ((c === CLOSE_BRACE || c === CLOSE_BRACKET) && --depth === 0) return j + 1;
  }
  throw bad(i);
}

/** The members of the object starting at `i`: each name and where its value's text lies. */
function* members(t: string, i: number): Generator<[string, number, number]> {
  if (t.charCodeAt(i) !== OPEN_BRACE) throw bad(i);
  i = skipSpace(t, i + 1);
  if (t.charCodeAt(i) === CLOSE_BRACE) return;
  for (;;) {
    if (t.charCodeAt(i) !== QUOTE) throw bad(i);
    const nameEnd = stringEnd(t, i);
    const name = JSON.parse(t.slice(i, nameEnd)) as string;
    i = skipSpace(t, nameEnd);
    if (t.charCodeAt(i) !== COLON) throw bad(i);
    const start = skipSpace(t, i + 1);
    const end = valueEnd(t, start);
    yield [name, start, end];
    i = skipSpace(t, end);
    const c = t.charCodeAt(i);
    if (c === CLOSE_BRACE) return;
    if (c !== COMMA) throw bad(i);
    i = skipSpace(t, i + 1);
  }
}

/** Sets a member as JSON.parse does: an own property, even one named `__proto__`. */
function put(o: Record<string, unknown>, name: string, value: unknown): void {
  Object.defineProperty(o, name, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * The state file's value as JSON.parse would give it, but for each pool's `keys`: an object
 * mapping each keyId to its entry's JSON text.
 */
export function parseStateLazily(t: string): unknown {
  const out: Record<string, unknown> = {};
  const top = skipSpace(t, 0);
  for (const [name, start, end] of members(t, top)) {
    if (name !== 'pools' || t.charCodeAt(start) !== OPEN_BRACE) {
      put(out, name, JSON.parse(t.slice(start, end)));
      continue;
    }
    const pools: Record<string, unknown> = {};
    for (const [pool, ps, pe] of members(t, start)) {
      if (t.charCodeAt(ps) !== OPEN_BRACE) {
        put(pools, pool, JSON.parse(t.slice(ps, pe)));
        continue;
      }
      const entry: Record<string, unknown> = {};
      for (const [field, fs, fe] of members(t, ps)) {
        if (field !== 'keys' || t.charCodeAt(fs) !== OPEN_BRACE) {
          put(entry, field, JSON.parse(t.slice(fs, fe)));
          continue;
        }
        const keys: Record<string, string> = {};
        for (const [keyId, ks, ke] of members(t, fs)) put(keys, keyId, t.slice(ks, ke));
        put(entry, field, keys);
      }
      put(pools, pool, entry);
    }
    put(out, name, pools);
  }
  if (skipSpace(t, valueEnd(t, top)) !== t.length) throw bad(top);
  return out;
}

/** A state file's text as a value: lazily (above), or by JSON.parse, whose error names what is wrong. */
export function parseStateText(text: string): unknown {
  try {
    return parseStateLazily(text);
  } catch {
    return JSON.parse(text) as unknown;
  }
}

/** A key entry as read: parsed already, or its JSON text (parseStateLazily), parsed now. */
export function keyEntry(raw: unknown): unknown {
  if (typeof raw !== 'string') return raw;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw; // refused by the reader as no key entry, with the others read
  }
}
