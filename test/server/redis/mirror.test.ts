/**
 * The Redis script mirrors pools/rules.ts function for function: every rule marked "Mirrored"
 * there is a function of the same name in redis/rules.lua, and the script takes its constants
 * from RULE_CONSTANTS (written in before it as `C`) instead of copies of its own.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { join } from 'node:path';
import { RULE_CONSTANTS } from '../../../server/pools/policy.js';
import { Pool } from '../../../server/pools/pool.js';
import { PoolCore } from '../../../server/pools/pool-core.js';
import { REPO_ROOT } from '../../helpers/server.js';
import { KEY_FIELDS } from '../../../server/pools/fields.js';
import { keyHashCodes } from '../../../server/redis/codec.js';

const rulesTs = readFileSync(join(REPO_ROOT, 'server', 'pools', 'rules.ts'), 'utf8');
const rulesLua = readFileSync(join(REPO_ROOT, 'server', 'redis', 'rules.lua'), 'utf8');
const poolLua = readFileSync(join(REPO_ROOT, 'server', 'redis', 'pool.lua'), 'utf8');
const storeLua = readFileSync(join(REPO_ROOT, 'server', 'redis', 'store.lua'), 'utf8');
const budgetsTs = readFileSync(join(REPO_ROOT, 'server', 'pools', 'budgets.ts'), 'utf8');
const appsLua = readFileSync(join(REPO_ROOT, 'server', 'redis', 'apps.lua'), 'utf8');

/** The functions a TS file marks "Mirrored." in their doc comment. */
const mirroredIn = (ts: string) =>
  [...ts.matchAll(/\/\*\*[\s*]*Mirrored\.[\s\S]*?\*\/\s*export function (\w+)/gu)].map((m) => m[1]!);
const luaFunctions = (lua: string) => new Set([...lua.matchAll(/^local function (\w+)/gmu)].map((m) => m[1]!));

describe('the Redis script mirrors the rulebook', () => {
  it('every rule marked Mirrored in rules.ts is a function of the same name in rules.lua', () => {
    const mirrored = mirroredIn(rulesTs);
    const inLua = luaFunctions(rulesLua);
    assert.ok(mirrored.length >= 12, `found ${mirrored.length} mirrored rules`);
    assert.deepEqual(
      mirrored.filter((name) => !inLua.has(name)),
      [],
    );
  });

  it('every budget rule marked Mirrored in budgets.ts is a function of the same name in apps.lua', () => {
    const mirrored = mirroredIn(budgetsTs);
    assert.ok(mirrored.length >= 5, `found ${mirrored.length} mirrored budget rules`);
    const inLua = luaFunctions(appsLua);
    assert.deepEqual(
      mirrored.filter((name) => !inLua.has(name)),
      [],
    );
  });

  it('no rule constant is written into the script files: each is read from C, which pool.ts writes from RULE_CONSTANTS', () => {
    for (const [name, value] of Object.entries(RULE_CONSTANTS)) {
      const literal = new RegExp(`(?<![\\w.])${Math.abs(value)}(?![\\w.])`, 'u');
      assert.doesNotMatch(rulesLua, literal, `${name} (${value}) written into rules.lua`);
      assert.doesNotMatch(poolLua, literal, `${name} (${value}) written into pool.lua`);
      assert.doesNotMatch(storeLua, literal, `${name} (${value}) written into store.lua`);
      assert.doesNotMatch(appsLua, literal, `${name} (${value}) written into apps.lua`);
      assert.match(rulesLua + poolLua, new RegExp(`C\\.${name}\\b`, 'u'), `${name} not read from C`);
    }
  });

  it("the script's operations are the pool's, name for name: pool.lua runs each as a function of its name, RedisPool from the method of that name, and the in-memory Pool has that method too", () => {
    const dispatched = [...poolLua.matchAll(/op == '(\w+)' then result = (\w+)\(\)/gu)].map(
      (m) => [m[1]!, m[2]!] as const,
    );
    assert.ok(dispatched.length >= 9, `found ${dispatched.length} operations`);
    assert.deepEqual(
      dispatched.filter(([op, fn]) => op !== fn),
      [],
      'an operation runs a function of another name',
    );
    const redisPool = readFileSync(join(REPO_ROOT, 'server', 'redis', 'pool.ts'), 'utf8');
    const run = new Set([...redisPool.matchAll(/this\.run<[\s\S]*?>\(\s*'(\w+)'/gu)].map((m) => m[1]!));
    assert.deepEqual([...run].sort(), dispatched.map(([op]) => op).sort(), 'RedisPool runs what pool.lua dispatches');
    const memory = Object.getOwnPropertyNames(Pool.prototype).concat(Object.getOwnPropertyNames(PoolCore.prototype));
    assert.deepEqual(
      dispatched.map(([op]) => op).filter((op) => !memory.includes(op)),
      [],
      'an operation the in-memory pool lacks',
    );
  });

  it("the script reads and writes a key's hash by the field table's codes, and reads every rule field", () => {
    const script = rulesLua + storeLua + poolLua;
    const used = new Set([...script.matchAll(/\b(?:get|set)\(\w+, '(\w+)'/gu)].map((m) => m[1]!));
    // The key-file line's hash and expiry sit in the key's hash too; they are not persisted state.
    const known = new Set([...keyHashCodes(), 'lh', 'exp']);
    assert.deepEqual(
      [...used].filter((code) => !known.has(code)),
      [],
      'a hash field the script uses that the field table does not describe',
    );
    const windowCodes =
      /local F = \{ minute = '(\w)', hour = '(\w)', day = '(\w)', month = '(\w)', week = '(\w)' \}/u.exec(rulesLua);
    assert.ok(windowCodes, "rules.lua's window codes");
    for (const c of windowCodes.slice(1)) assert.ok(known.has(`${c}S`) && known.has(`${c}C`), `window code ${c}`);
    for (const f of KEY_FIELDS.filter((field) => field.rule && field.redis !== null)) {
      assert.ok(
        [...used].some((code) => code.startsWith(f.redis!)),
        `the rule field ${f.name} (${f.redis}) is never read by the script`,
      );
    }
  });
});
