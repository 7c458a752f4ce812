import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
