/**
 * The pools' script in Redis and how a pool gets its own: the shared Lua with the rule constants
 * and the pool's policy written in before it.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { RULE_CONSTANTS, type PoolPolicy } from '../pools/policy.js';
import type { RedisClient } from './client.js';

/**
 * The script: `rules.lua` (the mirror of pools/rules.ts), `store.lua` (keys as records, and the
 * pool's indexes), `apps.lua` (apps' budgets, the mirror of pools/budgets.ts), then `pool.lua`
 * (the operations), run as one. Kept apart so the rules read side by side with their TS twins.
 */
const LUA = ['rules.lua', 'store.lua', 'apps.lua', 'pool.lua']
  .map((f) => readFileSync(new URL(`./${f}`, import.meta.url), 'utf8'))
  .join('\n');

/** One run of a pool's script: its key prefix, then ARGV. */
export type ScriptRun = (prefix: string, ...argv: Array<string | number>) => Promise<string>;

/** A value as a Lua constructor: numbers, booleans, ASCII strings, tables with name keys; null is nil. */
function lua(v: unknown): string {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'string' && /^[ -~]*$/u.test(v)) return JSON.stringify(v); // an ASCII JSON string is Lua too
  if (typeof v === 'object' && !Array.isArray(v)) {
    const fields = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined && x !== null);
    return `{ ${fields
      .map(([k, x]) => {
        if (!/^[A-Za-z_]\w*$/u.test(k)) throw new Error(`not a Lua name: ${k}`);
        return `${k} = ${lua(x)}`;
      })
      .join(', ')} }`;
  }
  throw new Error(`no Lua constructor for ${JSON.stringify(v)}`);
}

/**
 * Registers the script of a pool with `policy` on the client (a command of its own: EVALSHA, with
 * EVAL after a Redis restart forgot it): the rule constants (`C`) and the policy (`pol`) written
 * in as Lua tables before the shared script, so a run decodes neither; a constant or a policy
 * changed is another script. One command per distinct policy; returns a run of it.
 */
export function poolScript(client: RedisClient, policy: PoolPolicy): ScriptRun {
  const pol = {
    strategy: policy.strategy,
    rotateEvery: policy.rotateEvery,
    limits: policy.limits,
    poolPerMinute: policy.poolPerMinute,
    maxFailures: policy.maxFailures,
    failureWindowSec: policy.failureWindowSec,
    maxBackoffSec: policy.maxBackoffSec,
    probeTimeoutSec: policy.probeTimeoutSec,
    upstreamLimits: policy.upstreamLimits,
  };
  const prelude = `local C = ${lua(RULE_CONSTANTS)}\nlocal pol = ${lua(pol)}\n`;
  const name = `keywarden_${createHash('sha1').update(prelude).digest('hex').slice(0, 16)}`;
  if (!(name in client)) client.defineCommand(name, { numberOfKeys: 1, lua: prelude + LUA });
  const commands = client as unknown as Record<string, ScriptRun>;
  return (prefix, ...argv) => commands[name]!.call(client, prefix, ...argv);
}
