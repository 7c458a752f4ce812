#!/usr/bin/env node
// The `keywarden` command: the key server, the Discord bot or the key CLI, from a checkout
// (npx keywarden …) or from a project that installed the package. A plain module, so it runs
// with no build: tsx (a dependency) loads the TypeScript it starts.
import { register } from 'tsx/esm/api';

const USAGE = `usage: keywarden <command>

  start               run the key server (settings from the environment and .env)
  bot                 run the Discord bot
  keys <command> …    manage keys and state (keywarden keys help)
  --help              this text`;

const [command, ...rest] = process.argv.slice(2);
const entries = { start: '../server/index.ts', bot: '../bot/index.ts', keys: '../cli/keys.ts' };

if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
  process.stdout.write(`${USAGE}\n`);
} else if (!(command in entries)) {
  process.stderr.write(`keywarden: unknown command ${JSON.stringify(command)}\n${USAGE}\n`);
  process.exit(2);
} else {
  register();
  // Each entry reads its arguments from process.argv after the script: keep the command's own.
  process.argv = [process.argv[0], command, ...rest];
  await import(new URL(entries[command], import.meta.url).href);
}
