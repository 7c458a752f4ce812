import type { AppReport, KeywardenOps } from '../server/ops/contract.js';
import { CliError } from './errors.js';

export const APP_USAGE = `  app add <name> [options]    make an app; prints its token once (only a hash is kept)
  app list | show <name>      apps with what they spent per pool against their budgets
  app update <name> [options] change an app's settings
  app rotate <name> [--grace 24h]  a new token; the old one works for the grace period (default: none)
  app disable|enable <name>   refuse or allow the app's token (401 while disabled)
  app remove <name>           remove the app; its token stops working within a second
    options: --pools plantid,cropid|*  --mode proxy|handout|both  --stats  --admin (and --no-stats,
             --no-admin)  --budget <pool|*>:day=100,week=500,month=2000 (repeatable)
             --rate <per minute>  --expires 2027-06-30T00:00:00Z  (--rate none, --expires none: unset)
  audit [--since <ISO time>] [--limit 50]  the latest admin actions`;

const usage = (what: string) => new CliError(`usage: ${what}; run "npm run keys -- help" for more`, 2);

/** "24h", "30m", "90s", "2d" or plain seconds, as seconds. */
export function graceSeconds(text: string): number {
  const m = /^(\d+)([smhd]?)$/u.exec(text);
  if (!m) throw new CliError(`--grace ${JSON.stringify(text)}: give a duration like 24h, 30m, 90s or 2d`, 2);
  return Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
}

/** The settings an app's flags give (what `app add` and `app update` send), checked by the server's schema. */
export function appSettings(args: string[]): { name: string | undefined; settings: Record<string, unknown> } {
  const settings: Record<string, unknown> = {};
  let name: string | undefined;
  const budget: Record<string, Record<string, number>> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw new CliError(`${a}: missing its value`, 2);
      return v;
    };
    if (a === '--pools') {
      const v = value();
      settings.pools = v === '*' ? '*' : v.split(',').filter(Boolean);
    } else if (a === '--mode') settings.mode = value();
    else if (a === '--stats' || a === '--no-stats') settings.stats = a === '--stats';
    else if (a === '--admin' || a === '--no-admin') settings.admin = a === '--admin';
    else if (a === '--rate') {
      const v = value();
      settings.ratePerMinute = v === 'none' ? null : Number(v);
    } else if (a === '--expires') {
      const v = value();
      settings.expiresAt = v === 'none' ? null : v;
    } else if (a === '--budget') {
      const v = value();
      const m = /^([a-z0-9_*-]+):(.+)$/u.exec(v);
      if (!m) throw new CliError(`--budget ${JSON.stringify(v)}: give <pool|*>:day=100,week=500,month=2000`, 2);
      for (const part of m[2]!.split(',')) {
        const [window, n] = part.split('=');
        if (n === undefined || !/^\d+$/u.test(n))
          throw new CliError(`--budget ${JSON.stringify(v)}: ${JSON.stringify(part)} is not <window>=<credits>`, 2);
        (budget[m[1]!] ??= {})[window!] = Number(n);
      }
    } else if (a.startsWith('--')) throw new CliError(`unknown option ${a}; run "npm run keys -- help"`, 2);
    else if (name === undefined) name = a;
    else throw new CliError(`unexpected argument ${JSON.stringify(a)}`, 2);
  }
  if (Object.keys(budget).length > 0) settings.budget = budget;
  return { name, settings };
}

const when = (ms: number | null) => (ms === null ? 'never' : new Date(ms).toISOString().replace('.000Z', 'Z'));

function printApp(out: (l: string) => void, a: AppReport): void {
  const flags = [a.mode, a.stats ? 'stats' : '', a.admin ? 'admin' : '', a.disabled ? 'DISABLED' : '']
    .filter(Boolean)
    .join(', ');
  const pools = a.pools === '*' ? 'every pool' : a.pools.join(', ');
  out(`${a.name}  (${flags})  pools: ${pools}  last seen: ${when(a.lastSeenAt)}`);
  if (a.expiresAt) out(`  expires ${a.expiresAt}`);
  if (a.graceUntil) out(`  old token valid until ${a.graceUntil}`);
  if (a.ratePerMinute !== null) out(`  rate: ${a.ratePerMinute}/min`);
  for (const [pool, u] of Object.entries(a.usage)) {
    const of = (w: 'day' | 'week' | 'month') =>
      `${u.credits[w]}${u.budget?.[w] !== undefined ? `/${u.budget[w]}` : ''}`;
    out(
      `  ${pool}: ${u.handouts} handouts, credits day ${of('day')} week ${of('week')} month ${of('month')} ` +
        `total ${u.credits.total}, ${u.failovers} failovers`,
    );
  }
}

/** `app …` and `audit`: one use case each, through the admin API or on the apps file. */
export async function runAppCommand(
  command: 'app' | 'audit',
  rest: string[],
  ops: KeywardenOps,
  out: (l: string) => void,
): Promise<void> {
  if (command === 'audit') {
    const { since, limit } = auditArgs(rest);
    for (const e of await ops.audit(since, limit))
      out(`${e.at}  ${e.actor}  ${e.action}  ${e.target}  ${e.result}${e.ip ? `  from ${e.ip}` : ''}`);
    return;
  }
  const [action, ...args] = rest;
  const nameOnly = () => {
    if (args.length !== 1) throw usage(`app ${action} <name>`);
    return args[0]!;
  };
  switch (action) {
    case 'list': {
      const apps = await ops.apps();
      if (apps.length === 0) out('no apps (make one: app add <name>)');
      for (const a of apps) printApp(out, a);
      return;
    }
    case 'show':
      return printApp(out, await ops.app(nameOnly()));
    case 'add': {
      const { name, settings } = appSettings(args);
      if (name === undefined) throw usage('app add <name> [options]');
      const made = await ops.addApp({ name, ...settings });
      printApp(out, made);
      out(`token (shown once; only its hash is kept): ${made.token}`);
      return;
    }
    case 'update': {
      const { name, settings } = appSettings(args);
      if (name === undefined || Object.keys(settings).length === 0) throw usage('app update <name> <options>');
      printApp(out, await ops.updateApp(name, settings));
      return;
    }
    case 'disable':
    case 'enable': {
      const name = nameOnly();
      await ops.updateApp(name, { disabled: action === 'disable' });
      out(`${action}d app ${name}`);
      return;
    }
    case 'rotate': {
      const name = args[0];
      const i = args.indexOf('--grace');
      if (name === undefined || name.startsWith('--') || (i >= 0 && args[i + 1] === undefined))
        throw usage('app rotate <name> [--grace 24h]');
      const { token, graceUntil } = await ops.rotateApp(name, i >= 0 ? graceSeconds(args[i + 1]!) : 0);
      out(`new token for ${name} (shown once): ${token}`);
      out(graceUntil ? `the old token works until ${graceUntil}` : 'the old token no longer works');
      return;
    }
    case 'remove': {
      const name = nameOnly();
      await ops.removeApp(name);
      out(`removed app ${name}`);
      return;
    }
    default:
      throw usage('app add|list|show|update|rotate|disable|enable|remove');
  }
}

function auditArgs(rest: string[]): { since: number | undefined; limit: number } {
  let since: number | undefined;
  let limit = 50;
  for (let i = 0; i < rest.length; i += 2) {
    const [flag, v] = [rest[i], rest[i + 1]];
    if (flag === '--since' && v !== undefined && Number.isFinite(Date.parse(v))) since = Date.parse(v);
    else if (flag === '--limit' && v !== undefined && /^\d+$/u.test(v) && Number(v) >= 1 && Number(v) <= 1000)
      limit = Number(v);
    else throw usage('audit [--since <ISO time>] [--limit 1-1000]');
  }
  return { since, limit };
}
