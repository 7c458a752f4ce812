import { maskKey } from '../../shared/keys.js';

/**
 * Takes a pool's keys out of what an upstream answered (headers, and the part of a body the proxy
 * reads), so no key reaches a caller, a stats reason, a log line or the state. Pure.
 *
 * Two nets: every key this request sent is replaced wherever it stands, whatever its characters;
 * and any other run of key-like characters that `isPoolKey` knows is replaced too, since an
 * upstream may echo a key another request sent.
 */
export type IsPoolKey = (candidate: string) => boolean;

/** Runs of the characters API keys are made of, long enough to be one. */
const KEY_LIKE = /[A-Za-z0-9_-]{16,512}/gu;

export function maskKeysIn(
  text: string,
  sent: readonly string[],
  isPoolKey: IsPoolKey,
  mask: (key: string) => string = maskKey,
): string {
  let out = text;
  for (const key of sent) if (key !== '' && out.includes(key)) out = out.split(key).join(mask(key));
  return out.replace(KEY_LIKE, (run) => (isPoolKey(run) ? mask(run) : run));
}

/** A masked key in plain ASCII (a header value may not hold the ellipsis, nor a latin1 body). */
const asciiMask = (key: string): string => maskKey(key).replace('…', '...');

/** A flat header list (name, value, …) with keys masked in the values. */
export function maskHeaders(flat: readonly string[], sent: readonly string[], isPoolKey: IsPoolKey): string[] {
  const out = flat.slice();
  for (let i = 1; i < out.length; i += 2) out[i] = maskKeysIn(out[i]!, sent, isPoolKey, asciiMask);
  return out;
}

/**
 * A body's bytes with keys masked, read as latin1 so bytes that are not text pass unchanged; the
 * same buffer when nothing was masked.
 */
export function maskBody(body: Buffer, sent: readonly string[], isPoolKey: IsPoolKey): Buffer {
  const text = body.toString('latin1');
  const masked = maskKeysIn(text, sent, isPoolKey, asciiMask);
  return masked === text ? body : Buffer.from(masked, 'latin1');
}
