import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseKeyFile } from '../../../server/keys/keyfile.js';

describe('parseKeyFile', () => {
  it('trims, skips blanks and comments, tolerates CRLF and a BOM', () => {
    const p = parseKeyFile(
      '\ufeffalpha-key-0001\r\n  beta-key-0002  \r\n\r\n# a comment\n   # indented comment\ngamma-key-0003',
    );
    assert.deepEqual(
      p.keys.map((k) => [k.key, k.line]),
      [
        ['alpha-key-0001', 1],
        ['beta-key-0002', 2],
        ['gamma-key-0003', 6],
      ],
    );
    assert.deepEqual(p.warnings, []);
    assert.equal(p.skippedLines, 0);
  });

  it('counts duplicates once and warns with both line numbers', () => {
    const p = parseKeyFile('alpha-key-0001\nbeta-key-0002\nalpha-key-0001\n');
    assert.deepEqual(
      p.keys.map((k) => k.key),
      ['alpha-key-0001', 'beta-key-0002'],
    );
    assert.deepEqual(p.warnings, [{ line: 3, message: 'duplicate of line 1; counted once' }]);
    assert.equal(p.skippedLines, 1);
  });

  it('skips lines with inner whitespace or control characters, naming the line but never the key', () => {
    const secret = 'secret-part';
    const p = parseKeyFile(`good-key-0001\nbad ${secret}\nbad\u0007${secret}\nbad\u00a0${secret}`);
    assert.deepEqual(
      p.keys.map((k) => k.key),
      ['good-key-0001'],
    );
    assert.deepEqual(
      p.warnings.map((w) => w.line),
      [2, 3, 4],
    );
    assert.ok(p.warnings.every((w) => !w.message.includes(secret)));
  });

  it('reads an inline comment with expires= and rejects a bad date', () => {
    const p = parseKeyFile('k1-aaaaaaaa  # expires=2027-01-31\nk2-bbbbbbbb # owner: ops\nk3-cccccccc # expires=soon');
    assert.deepEqual(
      p.keys.map((k) => [k.key, k.expiresAt]),
      [
        ['k1-aaaaaaaa', Date.parse('2027-01-31T23:59:59.999Z')],
        ['k2-bbbbbbbb', null],
      ],
    );
    assert.equal(p.warnings[0]!.line, 3);
  });

  it('the line hash changes when the line does, even if the key does not', () => {
    const [a] = parseKeyFile('k1-aaaaaaaa').keys;
    const [b] = parseKeyFile('k1-aaaaaaaa # new').keys;
    assert.equal(a!.key, b!.key);
    assert.notEqual(a!.lineHash, b!.lineHash);
  });
});
