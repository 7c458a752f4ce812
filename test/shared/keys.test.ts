import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { keyIdOf, maskKey } from '../../shared/keys.js';

describe('key identity and masking', () => {
  it('keyId is the first 12 hex chars of sha256(key)', () => {
    assert.equal(keyIdOf('abc'), createHash('sha256').update('abc').digest('hex').slice(0, 12));
    assert.equal(keyIdOf('abc'), 'ba7816bf8f01');
  });

  it('masks as first 4 … last 4, and only the last 2 for short keys', () => {
    assert.equal(maskKey('ABCDEFGHIJKLMNOP'), 'ABCD…MNOP');
    assert.equal(maskKey('ABCDEFGHIJKL'), 'ABCD…IJKL');
    assert.equal(maskKey('ABCDEFGHIJK'), '…JK');
    assert.equal(maskKey('x'), '…x');
  });
});
