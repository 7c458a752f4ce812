import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

const cleanups = new WeakMap<TestContext, Array<() => unknown>>();

/**
 * Runs `fn` after the test, in reverse order of registration (node:test runs `t.after` hooks in
 * order), so a server started in a temp dir stops, and saves, before the dir is removed.
 */
export function deferCleanup(t: TestContext, fn: () => unknown): void {
  let list = cleanups.get(t);
  if (!list) {
    const fns: Array<() => unknown> = [];
    cleanups.set(t, fns);
    t.after(async () => {
      for (const f of fns.reverse()) await f();
    });
    list = fns;
  }
  list.push(fn);
}

/** A fresh temp dir, removed after the test. */
export async function tempDir(t: TestContext, prefix = 'keywarden-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  deferCleanup(t, () => rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A real tmpfs of `kib` KiB mounted on a temp dir, unmounted after the test, or null (with the
 * reason logged) where this machine does not allow mounting.
 */
export async function tinyTmpfs(t: TestContext, kib: number): Promise<string | null> {
  const dir = await tempDir(t);
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    const why = `cannot mount a tmpfs here (${(r.stderr || r.error?.message || `exit ${r.status}`).trim()})`;
    t.diagnostic(why);
    console.log(`# skipped: ${why}`);
    return null;
  }
  deferCleanup(t, () => spawnSync('umount', ['-l', dir]));
  return dir;
}
