import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | null = null;

/**
 * One full garbage collection, now. For the moment right after a start read a large state (a
 * million keys' state file is 83 MB of text and a million parsed entries, all garbage once the
 * records hold them): V8 starts a full collection only when the old generation grows past a
 * limit it set while loading, so an idle or lightly loaded server would keep that garbage, and
 * its RSS, for hours. The same way Jest's leak detector reaches V8's collector (`--expose-gc`
 * set at run time, `gc` taken from a fresh context, where the flag applies).
 */
export function collectGarbage(): void {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
}
