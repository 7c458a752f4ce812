import { z } from 'zod';
import { badRequest, HttpError } from '../errors.js';
import type { AppsFile } from '../apps/file.js';
import { appInput, appPatch, budgetIn, makeToken, mayUsePool, viewOf, type App } from '../apps/model.js';
import type { AppTraffic } from '../apps/traffic.js';
import type { PoolRegistry } from '../pools/registry.js';
import type { AppReport, AppUsageRow } from './contract.js';

/** The longest grace a rotated-out token may keep (a year). */
const MAX_GRACE_SECONDS = 31_536_000;

function invalid(error: z.ZodError): HttpError {
  const issue = error.issues[0]!;
  if (issue.code === 'unrecognized_keys') return badRequest('invalid_body', `unknown field ${issue.keys.join(', ')}`);
  return badRequest('invalid_body', `${issue.path.join('.') || 'body'}: ${issue.message}`);
}

const unknownApp = (name: string) => new HttpError(404, 'unknown_app', `no app named ${String(name).slice(0, 64)}`);

/**
 * The apps' use cases (ops/contract.ts): made, changed, rotated and removed in the apps file, and
 * shown with what each spent in every pool it used (the pools' ledgers, shared by instances) and
 * how its requests went (this instance's traffic).
 */
export class AppOperations {
  constructor(
    private readonly deps: {
      apps: AppsFile | null;
      registry: PoolRegistry;
      traffic: AppTraffic | null;
      clock: () => number;
    },
  ) {}

  private file(): AppsFile {
    if (!this.deps.apps) throw new HttpError(409, 'no_apps_file', 'this server keeps no apps (APPS_FILE)');
    return this.deps.apps;
  }

  /** Pools named by an app that this server does not have: a 400 naming them. */
  private checkPools(pools: string[] | '*' | undefined, budget: Record<string, unknown> | undefined): void {
    const named = [...(pools === '*' || pools === undefined ? [] : pools), ...Object.keys(budget ?? {})];
    const unknown = named.filter((p) => p !== '*' && !this.deps.registry.has(p));
    if (unknown.length > 0) throw badRequest('unknown_pool', `no pool named ${unknown.join(', ')} on this server`);
  }

  async list(): Promise<AppReport[]> {
    const apps = this.deps.apps?.apps ?? [];
    const usage = await this.usageByPool();
    return apps.map((app) => this.report(app, usage));
  }

  async show(name: string): Promise<AppReport> {
    const app = this.deps.apps?.get(name);
    if (!app) throw unknownApp(name);
    return this.report(app, await this.usageByPool());
  }

  async add(body: unknown): Promise<AppReport & { token: string }> {
    const parsed = appInput.safeParse(body);
    if (!parsed.success) throw invalid(parsed.error);
    const input = parsed.data;
    this.checkPools(input.pools, input.budget);
    const now = this.deps.clock();
    const { token, stored } = makeToken();
    const app: App = { ...input, createdAt: now, tokens: [stored] };
    await this.file().edit((apps) => {
      if (apps.some((a) => a.name === input.name))
        throw new HttpError(409, 'app_exists', `an app named ${input.name} exists`);
      return { apps: [...apps, app], result: undefined };
    });
    return { ...this.report(app, await this.usageByPool()), token };
  }

  async update(name: string, body: unknown): Promise<AppReport> {
    const parsed = appPatch.safeParse(body);
    if (!parsed.success) throw invalid(parsed.error);
    const patch = Object.fromEntries(Object.entries(parsed.data).filter(([, v]) => v !== undefined));
    this.checkPools(parsed.data.pools, parsed.data.budget);
    const app = await this.file().edit((apps) => {
      const i = apps.findIndex((a) => a.name === name);
      if (i < 0) throw unknownApp(name);
      const next = { ...apps[i]!, ...patch };
      return { apps: apps.map((a, j) => (j === i ? next : a)), result: next };
    });
    return this.report(app, await this.usageByPool());
  }

  /** A new token; the old ones keep working for `graceSeconds` (0: they stop now). */
  async rotate(name: string, graceSeconds: number): Promise<{ token: string; graceUntil: string | null }> {
    if (!Number.isInteger(graceSeconds) || graceSeconds < 0 || graceSeconds > MAX_GRACE_SECONDS)
      throw badRequest('invalid_body', `graceSeconds: must be a whole number from 0 to ${MAX_GRACE_SECONDS}`);
    const now = this.deps.clock();
    const { token, stored } = makeToken();
    const until = graceSeconds > 0 ? now + graceSeconds * 1000 : null;
    await this.file().edit((apps) => {
      const i = apps.findIndex((a) => a.name === name);
      if (i < 0) throw unknownApp(name);
      const old = until === null ? [] : apps[i]!.tokens.filter((t) => t.until === null || t.until > now);
      const kept = old.map((t) => ({ ...t, until: t.until === null ? until : Math.min(t.until, until!) }));
      const next = { ...apps[i]!, tokens: [stored, ...kept] };
      return { apps: apps.map((a, j) => (j === i ? next : a)), result: undefined };
    });
    return { token, graceUntil: until === null ? null : new Date(until).toISOString() };
  }

  async remove(name: string): Promise<void> {
    await this.file().edit((apps) => {
      if (!apps.some((a) => a.name === name)) throw unknownApp(name);
      return { apps: apps.filter((a) => a.name !== name), result: undefined };
    });
  }

  /** What each app spent in each pool, from the pools' ledgers. */
  private async usageByPool(): Promise<Map<string, Awaited<ReturnType<PoolRegistry['appUsage']>>>> {
    const { registry } = this.deps;
    const out = new Map<string, Awaited<ReturnType<PoolRegistry['appUsage']>>>();
    for (const pool of registry.names()) out.set(pool, await registry.appUsage(pool));
    return out;
  }

  private report(app: App, usage: Map<string, Awaited<ReturnType<PoolRegistry['appUsage']>>>): AppReport {
    const traffic = this.deps.traffic?.of(app.name) ?? {};
    const rows: Record<string, AppUsageRow> = {};
    let lastSeenAt: number | null = null;
    for (const [pool, byApp] of usage) {
      const used = byApp[app.name];
      const t = traffic[pool];
      if (!used && !t && !(mayUsePool(app, pool) && budgetIn(app, pool))) continue;
      rows[pool] = {
        handouts: used?.handouts ?? 0,
        credits: used?.credits ?? { day: 0, week: 0, month: 0, total: 0 },
        budget: mayUsePool(app, pool) ? budgetIn(app, pool) : null,
        lastSeenAt: Math.max(used?.lastSeenAt ?? 0, t?.lastSeenAt ?? 0) || null,
        outcomes: t?.outcomes ?? {},
        failovers: t?.failovers ?? 0,
      };
      const seen = rows[pool]!.lastSeenAt;
      if (seen !== null) lastSeenAt = Math.max(lastSeenAt ?? 0, seen);
    }
    return { ...viewOf(app, this.deps.clock()), usage: rows, lastSeenAt };
  }
}
