import { stat } from 'node:fs/promises';

/** What tells a key file changed without reading it: a poll compares these. */
export interface FileSignature {
  present: boolean;
  mtimeMs: number;
  ctimeMs: number;
  size: number;
  ino: number;
}

export function sameSignature(a: FileSignature | null, b: FileSignature): boolean {
  return (
    a !== null &&
    a.present === b.present &&
    a.mtimeMs === b.mtimeMs &&
    a.ctimeMs === b.ctimeMs &&
    a.size === b.size &&
    a.ino === b.ino
  );
}

/** The signature of the file at `path`; a missing file is one too (present: false). */
export async function signatureOf(path: string): Promise<FileSignature> {
  try {
    const s = await stat(path);
    return { present: true, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs, size: s.size, ino: s.ino };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      return { present: false, mtimeMs: 0, ctimeMs: 0, size: 0, ino: 0 };
    throw err;
  }
}
