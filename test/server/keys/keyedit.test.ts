import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { addKeys, KeyEditError, removeKey } from '../../../server/keys/keyedit.js';
import { keyIdOf } from '../../../shared/keys.js';
import { tempDir } from '../../helpers/tmp.js';

describe('key file editing', () => {
  it('adds keys at the end, keeping comments, order and CRLF line ends', async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'plantid.txt');
    await writeFile(file, '# team keys\r\nkey-one-aaaa  # expires=2027-01-01\r\n\r\nkey-two-bbbb');
    const added = await addKeys(file, ['key-three-cc', 'key-four-ddd']);
    assert.deepEqual(added, [
      { keyId: keyIdOf('key-three-cc'), masked: 'key-…e-cc' },
      { keyId: keyIdOf('key-four-ddd'), masked: 'key-…-ddd' },
    ]);
    assert.equal(
      await readFile(file, 'utf8'),
      '# team keys\r\nkey-one-aaaa  # expires=2027-01-01\r\n\r\nkey-two-bbbb\r\nkey-three-cc\r\nkey-four-ddd\r\n',
    );
    assert.deepEqual(await readdir(dir), ['plantid.txt']);
  });

  it('creates a missing file', async (t) => {
    const file = join(await tempDir(t), 'x.txt');
    await addKeys(file, ['key-one-aaaa']);
    assert.equal(await readFile(file, 'utf8'), 'key-one-aaaa\n');
  });

  it('refuses duplicates (in the file or the batch) and invalid keys, writing nothing', async (t) => {
    const file = join(await tempDir(t), 'x.txt');
    await writeFile(file, 'key-one-aaaa\n');
    await assert.rejects(
      addKeys(file, ['key-new-bbbb', 'key-one-aaaa']),
      (e: unknown) =>
        e instanceof KeyEditError && e.code === 'duplicate_key' && e.keyIds[0] === keyIdOf('key-one-aaaa'),
    );
    await assert.rejects(
      addKeys(file, ['key-new-bbbb', 'key-new-bbbb']),
      (e: unknown) => e instanceof KeyEditError && e.code === 'duplicate_key',
    );
    await assert.rejects(
      addKeys(file, ['has space']),
      (e: unknown) => e instanceof KeyEditError && e.code === 'invalid_key' && !e.message.includes('has space'),
    );
    await assert.rejects(addKeys(file, ['']), (e: unknown) => e instanceof KeyEditError && e.code === 'invalid_key');
    assert.equal(await readFile(file, 'utf8'), 'key-one-aaaa\n');
  });

  it('removes the line of one key and leaves every other byte alone', async (t) => {
    const file = join(await tempDir(t), 'x.txt');
    await writeFile(file, '\ufeff# keep\r\nkey-one-aaaa\r\n  key-two-bbbb  # note\r\nkey-three-cc');
    await removeKey(file, keyIdOf('key-two-bbbb'));
    assert.equal(await readFile(file, 'utf8'), '\ufeff# keep\r\nkey-one-aaaa\r\nkey-three-cc');
    await assert.rejects(
      removeKey(file, 'abcdefabcdef'),
      (e: unknown) => e instanceof KeyEditError && e.code === 'unknown_key',
    );
  });
});
