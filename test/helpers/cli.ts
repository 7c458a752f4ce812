import { join } from 'node:path';
import { cliMain, keysFromLines } from '../../cli/commands.js';
import { processProbe } from '../../server/state/lock.js';
import type { Layout } from './server.js';

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The keys CLI in this process, as cli/keys.ts runs it (cliMain) minus the process: pointed at
 * `layout`, with `stdin` as the piped keys and `env` added (KEYWARDEN_URL, ADMIN_TOKEN, KEYS_SECRET …).
 */
export async function runCli(
  layout: Layout,
  args: string[],
  opts: { env?: Record<string, string>; stdin?: string } = {},
): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const code = await cliMain(args, {
    probe: processProbe(process.pid, process.kill),
    env: {
      KEYS_DIR: layout.keysDir,
      STATE_FILE: layout.stateFile,
      APPS_FILE: join(layout.dir, 'apps.json'),
      AUDIT_FILE: join(layout.dir, 'audit.log'),
      PORT: '1',
      ...opts.env,
    },
    readKeys: async () => keysFromLines((opts.stdin ?? '').split('\n')),
    out: (line) => (stdout += `${line}\n`),
    err: (line) => (stderr += `${line}\n`),
  });
  return { code, stdout, stderr };
}
