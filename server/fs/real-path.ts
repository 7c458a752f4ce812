import { lstat, mkdir, readlink, realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

/** Links followed at most (the kernel's own limit is 40). */
const MAX_LINKS = 40;

/**
 * The file a path names, followed through every symlink, even one that points at nothing yet:
 * the path of the file itself, whether it exists or is still to be made. A server resolves its
 * state file once at start and then reads, writes, moves aside and locks that file, so a link
 * stays a link whatever happens to its target (full, empty, corrupt or missing), and two servers
 * reaching one file through different links lock the same path. A target whose directory is
 * missing gets it made when that directory's parent exists (`mkdir`, one level); with the
 * parent missing too, this throws ENOENT.
 */
export async function realFilePath(path: string): Promise<string> {
  const at = await followLinks(path);
  const dir = dirname(at);
  const realDir = await realpath(dir).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
    await mkdir(dir, { mode: 0o700 }); // the parent must exist: one level, never a whole tree
    return realpath(dir);
  });
  return join(realDir, basename(at));
}

/**
 * Where `path` leads through its symlinks, dangling ones included: the last link's target (made
 * absolute), or `path` when it is no link. Its folders are not resolved nor made.
 */
export async function followLinks(path: string): Promise<string> {
  let at = resolve(path);
  for (let hops = 0; ; hops++) {
    const st = await lstat(at).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw err;
    });
    if (st === null || !st.isSymbolicLink()) return at;
    if (hops >= MAX_LINKS) throw Object.assign(new Error(`too many links from ${path}`), { code: 'ELOOP' });
    at = resolve(dirname(at), await readlink(at));
  }
}
