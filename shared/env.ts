import { z } from 'zod';

/**
 * The exit code of a start that cannot succeed until someone changes the configuration (EX_CONFIG
 * of sysexits.h): a missing token, a bad variable, a state file another server holds. pm2 lists it
 * in `stop_exit_codes` (ecosystem.config.cjs), so such an app stops instead of restarting forever.
 */
export const CONFIG_EXIT_CODE = 78;

/** A configuration problem found at startup: one line naming the variable, file or field. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Parses `env` with a zod object schema; the first problem becomes a ConfigError naming the variable. */
export function parseEnv<S extends z.ZodType>(schema: S, env: Record<string, string | undefined>): z.infer<S> {
  // Empty strings count as unset, as in most .env conventions.
  const cleaned: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v.trim() !== '') cleaned[k] = v.trim();
  const result = schema.safeParse(cleaned);
  // Values of secret-bearing variables (tokens, URLs that may carry a password) are never echoed.
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const name = String(issue.path[0] ?? 'environment');
    const got = cleaned[name];
    throw new ConfigError(
      `${name}: ${issue.message}` +
        (got !== undefined && !/TOKEN|URL|PASSWORD|SECRET/u.test(name) ? ` (got ${JSON.stringify(got)})` : ''),
    );
  }
  return result.data;
}

/** Integer env var within bounds, with a default. */
export function intVar(def: number, min: number, max: number) {
  return z
    .string()
    .regex(/^\d+$/u, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`))
    .default(def);
}

/** Comma-separated list; blanks dropped. */
export function listVar() {
  return z
    .string()
    .transform((s) =>
      s
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t !== ''),
    )
    .default([]);
}

export const logLevelVar = z
  .enum(['error', 'warn', 'info', 'debug'], 'must be one of error, warn, info, debug')
  .default('info');

/** A yes/no variable: true or false (also 1/0, yes/no), default false (or `byDefault`). */
export function boolVar(byDefault = false) {
  return z
    .enum(['true', 'false', '1', '0', 'yes', 'no', ''], 'must be true or false')
    .default(byDefault ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1' || v === 'yes');
}
