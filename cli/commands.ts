import { readFile, writeFile } from 'node:fs/promises';
import { ConfigError } from '../shared/env.js';
import type { KeyStats, PoolStats } from '../shared/stats.js';
import { loadPools } from '../server/config.js';
import { HttpError } from '../server/errors.js';
import type { KeywardenOps } from '../server/ops/contract.js';
import type { CheckRow } from '../server/upstream/screen.js';
import { ApiOps } from './api-ops.js';
import { printChecks } from './check.js';
import { CliError } from './errors.js';
import { OfflineOps } from './offline.js';
import { recrypt } from './recrypt.js';
import { APP_USAGE, runAppCommand } from './apps.js';
import { detectMode, poolArg, targetOf, type CliDeps, type Target } from './target.js';

export { CliError };

export const USAGE = `usage: keywarden keys <command>   (in a checkout also: npm run keys -- <command>)
  list [pool]                 keys (masked) with status
  add <pool> [--force]        add keys: hidden prompt on a terminal, else one per line on stdin;
                              a pool with an upstream (Kindwise) checks them first and refuses
                              keys it rejects, unless --force
  check <pool>                ask the pool's upstream about every key now: status and credits left
  remove <pool> <keyId>       remove a key from the pool's key file
  disable <pool> <keyId>      take a key out of rotation
  enable <pool> <keyId>       put it back (clears blocks and failures)
  clear-throttle <pool>       lift a pool-wide throttle (after many keys reported 429 at once)
  encrypt <pool>              rewrite the pool's key file with every key encrypted (KEYS_SECRET)
  decrypt <pool>              rewrite it with every key in plaintext
  rotate-secret <pool>        re-encrypt its keys under KEYS_SECRET_NEW (every line must decrypt with KEYS_SECRET)
  state export <file>         write the rotation state (counts, blocks; keyIds, never keys) to a file
  state import <file>         replace the rotation state with a file's (another backend's, another machine's)
  status                      one line per pool
${APP_USAGE}`;

export type { CliDeps } from './target.js';

function keyIdArg(keyId: string | undefined): string {
  if (keyId === undefined) throw new CliError(`missing <keyId>; run "npm run keys -- help" for usage`, 2);
  if (!/^[0-9a-f]{12}$/u.test(keyId))
    throw new CliError(`keyId ${JSON.stringify(keyId)} is not 12 lowercase hex characters (see "list")`);
  return keyId;
}

function when(ms: number | null): string {
  return ms === null ? '' : new Date(ms).toISOString().replace('.000Z', 'Z');
}

function printKeys(out: (l: string) => void, pool: string, keys: KeyStats[]): void {
  out(`${pool}: ${keys.length} key${keys.length === 1 ? '' : 's'}`);
  for (const k of keys) {
    const why = k.reason ? ` (${k.reason}${k.until ? `, until ${when(k.until)}` : ''})` : '';
    out(
      `  ${k.keyId}  ${k.masked.padEnd(11)}  ${k.status.padEnd(9)}  day ${String(k.served.day).padStart(6)}  ` +
        `total ${String(k.served.total).padStart(8)}${why}`,
    );
  }
}

function printStatus(out: (l: string) => void, pools: Array<Omit<PoolStats, 'keys'>>): void {
  for (const p of pools) {
    const parts = [`${p.available}/${p.total} available`];
    for (const [n, v] of [
      ['blocked', p.blocked],
      ['exhausted', p.exhausted],
      ['invalid', p.invalid],
      ['disabled', p.disabled],
      ['expired', p.expired],
      ['probing', p.probing],
    ] as const)
      if (v) parts.push(`${v} ${n}`);
    if (p.creditsRemaining !== null) parts.push(`${p.creditsRemaining} credits left`);
    if (p.upstreamSync && !p.upstreamSync.ok)
      parts.push(`upstream unreachable at ${when(p.upstreamSync.at)} (${p.upstreamSync.error})`);
    if (!p.keyFile.present) parts.push(`no key file at ${p.keyFile.path}`);
    out(`${p.name.padEnd(12)} ${parts.join(', ')}`);
  }
}

/** Keys piped in, one a line; blank lines and # comments ignored. */
export function keysFromLines(lines: Iterable<string>): string[] {
  const keys: string[] = [];
  for (const line of lines) {
    const t = line.trim();
    if (t !== '' && !t.startsWith('#')) keys.push(t);
  }
  return keys;
}

/** A failure as one line: the operation's own sentence, or, for a refused add, the keys and what --force does. */
function errorLine(err: unknown): string {
  if (err instanceof HttpError && err.code === 'invalid_key' && Array.isArray(err.extra.keys)) {
    const refused = err.extra.keys as CheckRow[];
    const which = refused.map((r) => `${r.keyId} (${r.masked}): ${r.reason}`).join('; ');
    return `the upstream rejects ${refused.length} of the keys: ${which}; nothing was added (--force adds them anyway)`;
  }
  if (err instanceof CliError || err instanceof ConfigError || err instanceof HttpError) return err.message;
  return `unexpected error: ${(err as Error).message}`;
}

/**
 * The CLI as a process runs it: the command, then its exit code, with any failure as one line
 * on `err` (keys.ts adds only the process around it).
 */
export async function cliMain(args: string[], deps: CliDeps & { err: (line: string) => void }): Promise<number> {
  try {
    await runKeysCommand(args, deps);
    return 0;
  } catch (err) {
    deps.err(`keywarden-keys: ${errorLine(err)}`);
    return err instanceof CliError ? err.exitCode : 1;
  }
}

/** Commands that edit key files alone, so they work with any backend and no server. */
// Work on files alone: key files, the apps file and the audit log (no state).
const KEY_FILE_COMMANDS = ['add', 'remove', 'app', 'audit'];
const COMMANDS = [
  'list',
  'add',
  'check',
  'remove',
  'disable',
  'enable',
  'clear-throttle',
  'state',
  'encrypt',
  'decrypt',
  'rotate-secret',
  'status',
  'app',
  'audit',
];

/**
 * Runs one CLI command: its arguments read, one use case run (through a running server's admin
 * API when ADMIN_TOKEN reaches one, else on the files), its answer printed. Throws on any
 * failure: CliError, or the operation's HttpError (cliMain prints either as one line).
 */
export async function runKeysCommand(args: string[], deps: CliDeps): Promise<void> {
  const [command, ...rest] = args;
  const doFetch = deps.fetch ?? fetch;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    deps.out(USAGE);
    if (command === undefined) throw new CliError('missing <command>; see the usage above', 2);
    return;
  }
  if (!COMMANDS.includes(command))
    throw new CliError(`unknown command ${JSON.stringify(command)}; run "npm run keys -- help" for usage`, 2);
  let t: Target;
  try {
    t = targetOf(deps.env);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message);
    throw err;
  }
  if (command === 'encrypt' || command === 'decrypt' || command === 'rotate-secret')
    return recrypt(command, rest, t, deps);
  const mode = await detectMode(t, doFetch);
  if (mode.kind === 'files' && t.redis && !KEY_FILE_COMMANDS.includes(command)) {
    throw new CliError(
      `with STATE_BACKEND=redis, "${command}" goes through a running server's admin API: start one at ${t.url} ` +
        `with ADMIN_TOKEN set (add and remove work on the key files alone)`,
    );
  }
  const ops: KeywardenOps = mode.kind === 'api' ? new ApiOps(t, doFetch) : new OfflineOps(t, deps, mode.serverRunning);
  const names =
    mode.kind === 'api' ? (await ops.pools()).map((p) => p.name) : [...(await loadPools(t.keysDir)).policies.keys()];

  switch (command) {
    case 'app':
    case 'audit':
      return runAppCommand(command, rest, ops, deps.out);
    case 'status':
      printStatus(deps.out, await ops.pools());
      return;
    case 'list':
      for (const pool of rest[0] === undefined ? names : [poolArg(rest[0], names)])
        printKeys(deps.out, pool, await ops.keys(pool));
      return;
    case 'add': {
      const force = rest.includes('--force');
      const pool = poolArg(rest.filter((a) => a !== '--force')[0], names);
      const keys = await deps.readKeys();
      if (keys.length === 0)
        throw new CliError('no keys given (type one at the prompt, or pipe one per line on stdin)');
      const { added, warnings } = await ops.addKeys(pool, keys, force);
      for (const a of added) deps.out(`added ${a.keyId} ${a.masked} to ${pool}`);
      for (const w of warnings) deps.out(`warning: ${w}`);
      return;
    }
    case 'check': {
      const pool = poolArg(rest[0], names);
      printChecks(deps.out, pool, await ops.checkKeys(pool));
      return;
    }
    case 'remove': {
      const pool = poolArg(rest[0], names);
      const keyId = keyIdArg(rest[1]);
      await ops.removeKey(pool, keyId);
      deps.out(`removed ${keyId} from ${pool}`);
      return;
    }
    case 'state': {
      const [action, file] = rest;
      if ((action !== 'export' && action !== 'import') || file === undefined)
        throw new CliError('usage: state export <file> | state import <file>', 2);
      if (action === 'export') {
        const state = await ops.exportState();
        await writeFile(file, `${JSON.stringify(state)}\n`, { mode: 0o600 });
        deps.out(`exported the state of ${Object.keys(state.pools).join(', ')} to ${file}`);
        return;
      }
      const result = await ops.importState(await readStateFile(file)).catch((err: unknown) => {
        throw err instanceof HttpError && err.code === 'invalid_state' ? new CliError(`${file}: ${err.message}`) : err;
      });
      for (const d of result.dropped) deps.out(`warning: ${d}`);
      deps.out(`imported the state of ${result.imported.join(', ') || 'no pool'} from ${file}`);
      return;
    }
    case 'clear-throttle': {
      const pool = poolArg(rest[0], names);
      deps.out((await ops.clearThrottle(pool)) ? `cleared the throttle of ${pool}` : `${pool} was not throttled`);
      return;
    }
    case 'disable':
    case 'enable': {
      const pool = poolArg(rest[0], names);
      const keyId = keyIdArg(rest[1]);
      await ops.changeKey(pool, keyId, command);
      deps.out(`${command}d ${keyId} in ${pool}`);
      return;
    }
  }
}

/** A state file to import, as JSON (its reading and parsing errors name the file). */
async function readStateFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new CliError(`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new CliError(`${file}: not valid JSON (${(err as Error).message})`);
  }
}
