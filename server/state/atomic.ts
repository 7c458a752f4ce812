import { randomBytes } from 'node:crypto';
import { open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
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

/** Bytes gathered before each write of a piecewise atomicWrite (the event loop runs between writes). */
const WRITE_BATCH_BYTES = 64 * 1024;

/** Writes pieces in batches (pulled lazily; the event loop runs between writes); returns the bytes written. */
async function writePieces(fh: FileHandle, text: string | Iterable<string>): Promise<number> {
  let bytes = 0;
  const write = async (chunk: string) => {
    const buf = Buffer.from(chunk, 'utf8');
    await fh.write(buf);
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
 * Appends `text` and a newline to `path` (created if missing) and fsyncs it. A crash mid-append
 * leaves at most a torn last line, which readers of the file must ignore. Returns bytes appended.
 */
export async function appendLine(path: string, text: string | Iterable<string>, defaultMode = 0o600): Promise<number> {
  const fh = await open(path, 'a', defaultMode);
  try {
    const bytes = (await writePieces(fh, text)) + (await fh.write('\n')).bytesWritten;
    await fh.sync();
    return bytes;
  } finally {
    await fh.close();
  }
}

/**
 * Writes `text` (a string, or pieces of one) to `path` so that a crash at any moment leaves
 * either the old file or the new one whole: temp file beside it, fsync, rename over, fsync the
 * directory. Keeps an existing file's mode. Pieces are pulled lazily, one write batch at a time.
 * Returns the bytes written.
 */
export async function atomicWrite(path: string, text: string | Iterable<string>, defaultMode = 0o600): Promise<number> {
  const dir = dirname(path);
  const tmp = join(dir, `${tempPrefix(path)}${randomBytes(6).toString('hex')}.tmp`);
  let mode = defaultMode;
  try {
    mode = (await stat(path)).mode & 0o777;
  } catch {
    // new file
  }
  const fh = await open(tmp, 'w', mode);
  let bytes: number;
  try {
    bytes = await writePieces(fh, text);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fsyncDir(dir);
  return bytes;
}

/** Removes temp files a crash left beside `path` (never renamed into place, so garbage). */
export async function removeStaleTemps(path: string): Promise<void> {
  const prefix = tempPrefix(path);
  let names: string[];
  try {
    names = await readdir(dirname(path));
  } catch {
    return;
  }
  await Promise.all(names.filter((n) => n.startsWith(prefix) && n.endsWith('.tmp')).map((n) => unlink(join(dirname(path), n)).catch(() => {})));
}
