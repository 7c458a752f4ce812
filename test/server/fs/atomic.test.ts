/**
 * Atomic writes when the disk fails: short writes (what a full disk returns without an error),
 * ENOSPC, EIO and EROFS, from an injected filesystem and from a real tiny tmpfs. The previous
 * file is always left whole, and no temp file stays behind.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  appendLine,
  atomicWrite,
  NODE_FS,
  ShortWriteError,
  type WriteFs,
  type WriteHandle,
} from '../../../server/fs/atomic.js';
import { tempDir, tinyTmpfs } from '../../helpers/tmp.js';

type Fault =
  | { op: 'write'; after: number; kind: 'short' | 'zero' | NodeJS.ErrnoException['code'] }
  | { op: 'rename' | 'sync'; kind: string };

/** node:fs/promises, except for the one fault it is told to play. */
function faultyFs(fault: Fault): WriteFs & { writes: number } {
  const err = (code: string) => Object.assign(new Error(`${code}: injected`), { code });
  const fs = {
    ...NODE_FS,
    writes: 0,
    async open(path: string, flags: string, mode?: number): Promise<WriteHandle> {
      const fh = await NODE_FS.open(path, flags, mode);
      return {
        write: async (buf, offset, length) => {
          fs.writes++;
          if (fault.op === 'write' && fs.writes > fault.after) {
            if (fault.kind === 'short') return fh.write(buf, offset, Math.max(1, Math.floor(length / 3))); // progress, but not all
            if (fault.kind === 'zero') return { bytesWritten: 0 };
            throw err(fault.kind!);
          }
          return fh.write(buf, offset, length);
        },
        sync: async () => {
          if (fault.op === 'sync') throw err(fault.kind);
          return fh.sync();
        },
        truncate: (n) => fh.truncate(n),
        close: () => fh.close(),
      };
    },
    async rename(from: string, to: string) {
      if (fault.op === 'rename') throw err(fault.kind);
      return NODE_FS.rename(from, to);
    },
  };
  return fs;
}

const GOOD = '{"the":"previous good state"}';

describe('atomicWrite and appendLine under disk faults', () => {
  const faults: Array<[string, Fault, RegExp]> = [
    [
      'a write that stops making progress (full disk, no error)',
      { op: 'write', after: 1, kind: 'zero' },
      /short write .* \(disk full\?\)/u,
    ],
    ['ENOSPC mid-file', { op: 'write', after: 1, kind: 'ENOSPC' }, /ENOSPC/u],
    ['EIO', { op: 'write', after: 0, kind: 'EIO' }, /EIO/u],
    ['a failing fsync', { op: 'sync', kind: 'EIO' }, /EIO/u],
    ['EROFS on rename', { op: 'rename', kind: 'EROFS' }, /EROFS/u],
  ];
  for (const [what, fault, message] of faults) {
    it(`${what}: the old file stays whole and the temp file is removed`, async (t) => {
      const dir = await tempDir(t);
      const path = join(dir, 'state.json');
      await writeFile(path, GOOD);
      const pieces = Array.from({ length: 400 }, (_, i) => `"k${i}":${'x'.repeat(500)},`); // several write batches
      await assert.rejects(atomicWrite(path, pieces, faultyFs(fault)), message);
      assert.equal(await readFile(path, 'utf8'), GOOD);
      assert.deepEqual(await readdir(dir), ['state.json']);
    });
  }

  it('short writes that keep making progress still write every byte', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'state.json');
    const fs = faultyFs({ op: 'write', after: 0, kind: 'short' });
    const text = 'y'.repeat(100_000);
    assert.equal(await atomicWrite(path, text, fs), 100_000);
    assert.equal(await readFile(path, 'utf8'), text);
    assert.ok(fs.writes > 3, `${fs.writes} writes`);
  });

  it('a failed append is cut back off, so the journal ends where it did', async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'state.json.journal');
    await appendLine(path, '{"entry":1}');
    await assert.rejects(
      appendLine(
        path,
        Array.from({ length: 50 }, () => 'z'.repeat(4000)),
        faultyFs({ op: 'write', after: 1, kind: 'ENOSPC' }),
      ),
      /ENOSPC/u,
    );
    assert.equal(await readFile(path, 'utf8'), '{"entry":1}\n');
    await assert.rejects(appendLine(path, 'short', faultyFs({ op: 'write', after: 0, kind: 'zero' })), ShortWriteError);
    assert.equal(await readFile(path, 'utf8'), '{"entry":1}\n');
  });

  it('a symlinked file is written through to its target, atomically beside the target; the link stays a link', async (t) => {
    const dir = await tempDir(t);
    await mkdir(join(dir, 'real'));
    const target = join(dir, 'real', 'state.json');
    await writeFile(target, GOOD);
    const link = join(dir, 'state.json');
    await symlink(target, link);
    await atomicWrite(link, '{"new":true}');
    assert.equal(await readlink(link), target);
    assert.equal(await readFile(target, 'utf8'), '{"new":true}');
    assert.deepEqual(await readdir(join(dir, 'real')), ['state.json']);
    await appendLine(join(dir, 'j'), 'a'); // a plain file still works
    await symlink(join(dir, 'j'), join(dir, 'j-link'));
    await appendLine(join(dir, 'j-link'), 'b');
    assert.equal(await readFile(join(dir, 'j'), 'utf8'), 'a\nb\n');
  });

  it('a dangling link is written through to the file it names, which is made; the link stays a link', async (t) => {
    const dir = await tempDir(t);
    const target = join(dir, 'not-yet.txt');
    const link = join(dir, 'keys.txt');
    await symlink('not-yet.txt', link); // relative, as links often are
    await atomicWrite(link, 'k1\n');
    assert.equal(await readlink(link), 'not-yet.txt');
    assert.equal(await readFile(target, 'utf8'), 'k1\n');
  });
});

describe('atomicWrite on a real full disk (tmpfs)', () => {
  it('a write the disk cannot hold fails with the old file whole and no temp file left', async (t) => {
    const dir = await tinyTmpfs(t, 128);
    if (!dir) return t.skip('no tmpfs');
    const path = join(dir, 'state.json');
    await atomicWrite(path, GOOD);
    await writeFile(join(dir, 'filler'), Buffer.alloc(120 * 1024)); // about 8 KiB left
    await assert.rejects(
      atomicWrite(path, 'w'.repeat(60 * 1024)),
      (err: NodeJS.ErrnoException) => err.code === 'ENOSPC',
    );
    assert.equal(await readFile(path, 'utf8'), GOOD);
    assert.deepEqual((await readdir(dir)).sort(), ['filler', 'state.json']);
  });
});
