import { randomBytes } from 'node:crypto';
import * as nodeFs from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { followLinks } from './real-path.js';

/**
 * The file operations atomic writes use: node:fs/promises by default, a stand-in in tests that
 * returns short writes and errors (what a full or failing disk does) on cue.
 */
export interface WriteFs {
  open(path: string, flags: string, mode?: number): Promise<WriteHandle>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  stat(path: string): Promise<{ mode: number; size: number }>;
  readdir(path: string): Promise<string[]>;
  realpath(path: string): Promise<string>;
}

export interface WriteHandle {
  write(buffer: Buffer, offset: number, length: number): Promise<{ bytesWritten: number }>;
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
}

export const NODE_FS: WriteFs = nodeFs as unknown as WriteFs;

/** A write that made no progress: the disk took nothing more, without saying why (a full disk does this). */
export class ShortWriteError extends Error {
  readonly code = 'ENOSPC';

  constructor(path: string, written: number, wanted: number) {
    super(`short write to ${path}: ${written} of ${wanted} bytes (disk full?)`);
    this.name = 'ShortWriteError';
  }
}

async function fsyncDir(fs: WriteFs, dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic.
  } finally {
    await fh.close();
  }
}

/** Prefix of the temp files atomicWrite leaves beside `path` while writing. */
export function tempPrefix(path: string): string {
  return `.${basename(path)}.`;
}

/**
 * Where a write of `path` lands: a symlink's final target (so a linked STATE_FILE or key file is
 * written through, and the link keeps pointing at current data), else `path` itself. A dangling
 * link leads to the file it names, which the write makes: the link is never replaced by a file.
 */
export async function writeTarget(path: string, fs: WriteFs = NODE_FS): Promise<string> {
  try {
    return await fs.realpath(path);
  } catch (err) {
    // a new file, or a link to one
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return followLinks(path);
    throw err;
  }
}

/** Bytes gathered before each write of a piecewise atomicWrite (the event loop runs between writes). */
const WRITE_BATCH_BYTES = 64 * 1024;

/**
 * Writes all of `buf`: a write may take fewer bytes than asked without failing (a disk filling
 * up does), so it goes on from where the last one stopped, and a write that takes nothing is an
 * error instead of a silently truncated file.
 */
async function writeAll(fh: WriteHandle, buf: Buffer, path: string): Promise<void> {
  let offset = 0;
  while (offset < buf.length) {
    const { bytesWritten } = await fh.write(buf, offset, buf.length - offset);
    if (bytesWritten <= 0) throw new ShortWriteError(path, offset, buf.length);
    offset += bytesWritten;
  }
}

/** Writes pieces in batches (pulled lazily; the event loop runs between writes); returns the bytes written. */
async function writePieces(fh: WriteHandle, text: string | Iterable<string>, path: string): Promise<number> {
  let bytes = 0;
  const write = async (chunk: string) => {
    const buf = Buffer.from(chunk, 'utf8');
    await writeAll(fh, buf, path);
    bytes += buf.length;
  };
  if (typeof text === 'string') {
    await write(text);
    return bytes;
  }
  let batch: string[] = [];
  let size = 0;
  for (const piece of text) {
    batch.push(piece);
    size += piece.length;
    if (size >= WRITE_BATCH_BYTES) {
      await write(batch.join(''));
      batch = [];
      size = 0;
    }
  }
  if (batch.length > 0) await write(batch.join(''));
  return bytes;
}

/**
 * Appends `text` and a newline to `path` (created if missing) and fsyncs it. A failed append is
 * cut back off, so the file ends where it did (or, after a crash mid-append, with at most a torn
 * last line, which readers of the file must ignore). Returns bytes appended.
 */
export async function appendLine(
  path: string,
  text: string | Iterable<string>,
  fs: WriteFs = NODE_FS,
  defaultMode = 0o600,
): Promise<number> {
  const target = await writeTarget(path, fs);
  const fh = await fs.open(target, 'a', defaultMode);
  const before = await fs.stat(target).then((s) => s.size);
  try {
    const bytes = await writePieces(fh, text, target);
    await writeAll(fh, Buffer.from('\n'), target);
    await fh.sync();
    return bytes + 1;
  } catch (err) {
    await fh.truncate(before).catch(() => {});
    throw err;
  } finally {
    await fh.close();
  }
}

/**
 * Writes `text` (a string, or pieces of one) to `path` so that a crash or a failed write at any
 * moment leaves either the old file or the new one whole: temp file beside it, every byte
 * written (see writeAll), fsync, rename over, fsync the directory. A failure removes the temp
 * file and leaves the old file as it was. A symlinked `path` is written through to its target
 * (the temp file beside the target). Keeps an existing file's mode. Pieces are pulled lazily,
 * one write batch at a time. Returns the bytes written.
 */
export async function atomicWrite(
  path: string,
  text: string | Iterable<string>,
  fs: WriteFs = NODE_FS,
  defaultMode = 0o600,
): Promise<number> {
  const target = await writeTarget(path, fs);
  const dir = dirname(target);
  const tmp = join(dir, `${tempPrefix(target)}${randomBytes(6).toString('hex')}.tmp`);
  let mode = defaultMode;
  try {
    mode = (await fs.stat(target)).mode & 0o777;
  } catch {
    // new file
  }
  const fh = await fs.open(tmp, 'w', mode);
  let bytes: number;
  try {
    bytes = await writePieces(fh, text, tmp);
    await fh.sync();
    await fh.close();
  } catch (err) {
    await fh.close().catch(() => {});
    await fs.unlink(tmp).catch(() => {});
    throw err;
  }
  try {
    await fs.rename(tmp, target);
  } catch (err) {
    await fs.unlink(tmp).catch(() => {});
    throw err;
  }
  await fsyncDir(fs, dir);
  return bytes;
}

/** Removes temp files a crash left beside `path` (never renamed into place, so garbage). */
export async function removeStaleTemps(path: string, fs: WriteFs = NODE_FS): Promise<void> {
  const target = await writeTarget(path, fs).catch(() => path);
  const prefix = tempPrefix(target);
  let names: string[];
  try {
    names = await fs.readdir(dirname(target));
  } catch {
    return;
  }
  await Promise.all(
    names
      .filter((n) => n.startsWith(prefix) && n.endsWith('.tmp'))
      .map((n) => fs.unlink(join(dirname(target), n)).catch(() => {})),
  );
}
