import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../shared/env.js';
import type { KeyStats, PoolStats } from '../shared/stats.js';
import { loadPools } from '../server/config.js';
import { KeyEditError, removeKey } from '../server/keys/keyedit.js';
import type { CheckRow } from '../server/upstream/screen.js';
import { deserializeState, stateExport, type StateFile } from '../server/state/format.js';
import { addOffline, checkPoolOffline, offlineChecker, printChecks } from './check.js';
import { CliError } from './errors.js';
import { editStateOffline, exportOffline, offlineRegistry } from './offline.js';
import { recrypt } from './recrypt.js';
import { api, detectMode, poolArg, targetOf, type CliDeps, type Target } from './target.js';

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
  status                      one line per pool`;

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

/**
 * The CLI as a process runs it: the command, then its exit code, with any failure as one line
 * on `err` (keys.ts adds only the process around it).
 */
export async function cliMain(args: string[], deps: CliDeps & { err: (line: string) => void }): Promise<number> {
  try {
    await runKeysCommand(args, deps);
    return 0;
  } catch (err) {
    const known = err instanceof CliError || err instanceof ConfigError;
    deps.err(`keywarden-keys: ${known ? (err as Error).message : `unexpected error: ${(err as Error).message}`}`);
    return err instanceof CliError ? err.exitCode : 1;
  }
}

/** Runs one CLI command. Throws CliError (one line) on any failure. */
export async function runKeysCommand(args: string[], deps: CliDeps): Promise<void> {
  const [command, ...rest] = args;
  const doFetch = deps.fetch ?? fetch;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    deps.out(USAGE);
    if (command === undefined) throw new CliError('missing <command>; see the usage above', 2);
    return;
  }
  if (
    ![
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
    ].includes(command)
  )
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
  if (mode.kind === 'files' && t.redis && command !== 'add' && command !== 'remove') {
    throw new CliError(
      `with STATE_BACKEND=redis, "${command}" goes through a running server's admin API: start one at ${t.url} ` +
        `with ADMIN_TOKEN set (add and remove work on the key files alone)`,
    );
  }
  const names =
    mode.kind === 'api'
      ? (await api<{ pools: Array<{ name: string }> }>(t, doFetch, 'GET', '/pools')).pools.map((p) => p.name)
      : [...(await loadPools(t.keysDir)).policies.keys()];

  switch (command) {
    case 'status': {
      if (mode.kind === 'api')
        printStatus(
          deps.out,
          (await api<{ pools: Array<Omit<PoolStats, 'keys'>> }>(t, doFetch, 'GET', '/pools')).pools,
        );
      else
        printStatus(
          deps.out,
          (await (await offlineRegistry(t)).registry.stats({ version: '', uptimeSec: 0 }, { keys: 'none' })).pools,
        );
      return;
    }
    case 'list': {
      const pools = rest[0] === undefined ? names : [poolArg(rest[0], names)];
      if (mode.kind === 'api') {
        for (const p of pools)
          printKeys(deps.out, p, (await api<{ keys: KeyStats[] }>(t, doFetch, 'GET', `/pools/${p}/keys`)).keys);
      } else {
        const { registry } = await offlineRegistry(t);
        for (const p of pools)
          printKeys(
            deps.out,
            p,
            (await registry.stats({ version: '', uptimeSec: 0 }, { keys: 'all', pool: p })).pools[0]!.keys,
          );
      }
      return;
    }
    case 'add': {
      const force = rest.includes('--force');
      const pool = poolArg(rest.filter((a) => a !== '--force')[0], names);
      const keys = await deps.readKeys();
      if (keys.length === 0)
        throw new CliError('no keys given (type one at the prompt, or pipe one per line on stdin)');
      let added: Array<{ keyId: string; masked: string }>;
      let warnings: string[];
      if (mode.kind === 'api') {
        ({ added, warnings } = await api<{ added: typeof added; warnings: string[] }>(
          t,
          doFetch,
          'POST',
          `/pools/${pool}/keys${force ? '?force=true' : ''}`,
          { keys },
        ));
      } else {
        ({ added, warnings } = await addOffline(
          {
            path: join(t.keysDir, `${pool}.txt`),
            upstreams: (await loadPools(t.keysDir)).upstreams,
            timeoutMs: t.upstreamTimeoutMs,
            cipher: t.cipher,
            fetchUsage: deps.fetchUsage,
          },
          pool,
          keys,
          force,
        ));
      }
      for (const a of added) deps.out(`added ${a.keyId} ${a.masked} to ${pool}`);
      for (const w of warnings) deps.out(`warning: ${w}`);
      return;
    }
    case 'check': {
      const pool = poolArg(rest[0], names);
      if (mode.kind === 'api') {
        printChecks(deps.out, pool, (await api<{ keys: CheckRow[] }>(t, doFetch, 'POST', `/pools/${pool}/check`)).keys);
        return;
      }
      const { upstreams } = await loadPools(t.keysDir);
      if (upstreams.get(pool)?.type !== 'kindwise')
        throw new CliError(`pool ${pool} has no upstream to check its keys with (pools.json "upstream")`);
      if (mode.serverRunning)
        throw new CliError(
          `a server is running at ${t.url} without ADMIN_TOKEN; set ADMIN_TOKEN (in .env) for both to check ` +
            `keys while it runs`,
        );
      const asker = offlineChecker(upstreams, t.upstreamTimeoutMs, deps.fetchUsage);
      try {
        printChecks(
          deps.out,
          pool,
          await editStateOffline(t, deps.probe, (registry) => checkPoolOffline(registry, asker.checker, pool)),
        );
      } finally {
        await asker.close();
      }
      return;
    }
    case 'remove': {
      const pool = poolArg(rest[0], names);
      const keyId = keyIdArg(rest[1]);
      if (mode.kind === 'api') await api(t, doFetch, 'DELETE', `/pools/${pool}/keys/${keyId}`);
      else {
        try {
          await removeKey(join(t.keysDir, `${pool}.txt`), keyId, t.cipher);
        } catch (err) {
          if (err instanceof KeyEditError) throw new CliError(err.message);
          throw err;
        }
      }
      deps.out(`removed ${keyId} from ${pool}`);
      return;
    }
    case 'state': {
      const [action, file] = rest;
      if ((action !== 'export' && action !== 'import') || file === undefined)
        throw new CliError('usage: state export <file> | state import <file>', 2);
      if (action === 'export') {
        const state: StateFile =
          mode.kind === 'api'
            ? await api<StateFile>(t, doFetch, 'GET', '/state')
            : stateExport(await exportOffline(await offlineRegistry(t)), Date.now());
        await writeFile(file, `${JSON.stringify(state)}\n`, { mode: 0o600 });
        deps.out(`exported the state of ${Object.keys(state.pools).join(', ')} to ${file}`);
        return;
      }
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        throw new CliError(
          `${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
        );
      }
      let parsed: ReturnType<typeof deserializeState>;
      try {
        parsed = deserializeState(text);
      } catch (err) {
        throw new CliError(`${file}: ${(err as Error).message}`);
      }
      for (const d of parsed.dropped) deps.out(`warning: ${d}`);
      let imported: string[];
      if (mode.kind === 'api')
        imported = (await api<{ imported: typeof imported }>(t, doFetch, 'POST', '/state', parsed.state)).imported;
      else {
        if (mode.serverRunning)
          throw new CliError(
            `a server is running at ${t.url} without ADMIN_TOKEN; set ADMIN_TOKEN (in .env) for both to import ` +
              `state while it runs`,
          );
        imported = await editStateOffline(t, deps.probe, async (registry) => {
          const done: string[] = [];
          for (const [name, st] of Object.entries(parsed.state.pools)) {
            if (!registry.has(name)) continue;
            await registry.withPool(name, (p, now) => p.replaceState(st, now));
            done.push(name);
          }
          return done;
        });
      }
      deps.out(`imported the state of ${imported.join(', ') || 'no pool'} from ${file}`);
      return;
    }
    case 'clear-throttle': {
      const pool = poolArg(rest[0], names);
      let cleared: boolean;
      if (mode.kind === 'api')
        cleared = (await api<{ cleared: typeof cleared }>(t, doFetch, 'POST', `/pools/${pool}/clear-throttle`)).cleared;
      else {
        if (mode.serverRunning)
          throw new CliError(
            `a server is running at ${t.url} without ADMIN_TOKEN; set ADMIN_TOKEN (in .env) for both to clear a ` +
              `throttle while it runs`,
          );
        cleared = await editStateOffline(t, deps.probe, (registry) =>
          registry.withPool(pool, (p, now) => p.clearThrottle(now)),
        );
      }
      deps.out(cleared ? `cleared the throttle of ${pool}` : `${pool} was not throttled`);
      return;
    }
    case 'disable':
    case 'enable': {
      const pool = poolArg(rest[0], names);
      const keyId = keyIdArg(rest[1]);
      if (mode.kind === 'api') {
        await api(t, doFetch, 'POST', `/pools/${pool}/keys/${keyId}/${command}`);
      } else {
        // The running server owns the state file and would overwrite an edit made behind its back.
        if (mode.serverRunning)
          throw new CliError(
            `a server is running at ${t.url} without ADMIN_TOKEN; set ADMIN_TOKEN (in .env) for both to ` +
              `${command} keys while it runs`,
          );
        const ok = await editStateOffline(t, deps.probe, (registry) =>
          registry.withPool(pool, (p, now) => p.admin(command, keyId, now, 'disabled by admin (cli)')),
        );
        if (!ok) throw new CliError(`pool ${pool} has no key ${keyId}`);
      }
      deps.out(`${command}d ${keyId} in ${pool}`);
      return;
    }
  }
}
