/**
 * collectGarbage runs V8's full collection on demand (a start that read a big state calls it, so
 * the state's text and parsed entries do not sit in RSS until the heap next grows).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { collectGarbage } from '../../../server/state/collect-garbage.js';

describe('collectGarbage', () => {
  it('frees what nothing references any more, every time it is called', async () => {
    for (let round = 0; round < 2; round++) {
      // Made and dropped in a function of its own: only the WeakRef is left.
      const ref = ((): WeakRef<number[]> => new WeakRef(Array.from({ length: 100_000 }, (_, i) => i)))();
      // A WeakRef's target stays alive until the job that made it ends.
      await new Promise((r) => setImmediate(r));
      collectGarbage();
      assert.equal(ref.deref(), undefined, `round ${round}: still alive after a full collection`);
    }
  });
});
