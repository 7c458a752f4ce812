import { createInterface } from 'node:readline';
import dotenv from 'dotenv';
import { processProbe } from '../server/state/lock.js';
import { CliError, cliMain, keysFromLines } from './commands.js';

/** Reads one key from the terminal without echoing it. */
function promptHidden(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    stdin.setRawMode(true); // before the prompt, so nothing typed after it is echoed
    process.stderr.write(question);
    stdin.resume();
    stdin.setEncoding('utf8');
    let input = '';
    const done = (err: Error | null) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(input.trim());
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done(null);
        if (ch === '\u0003') return done(new CliError('cancelled', 130));
        if (ch === '\u007f' || ch === '\b') input = input.slice(0, -1);
        else input += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/** One key per line from piped stdin. */
async function readStdinKeys(): Promise<string[]> {
  const lines: string[] = [];
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) lines.push(line);
  return keysFromLines(lines);
}

dotenv.config({ quiet: true }); // ADMIN_TOKEN, HOST, PORT, KEYS_DIR, STATE_FILE from .env; the environment wins
cliMain(process.argv.slice(2), {
  env: process.env,
  probe: processProbe(process.pid, process.kill),
  readKeys: async () =>
    process.stdin.isTTY ? [await promptHidden('key (input hidden): ')].filter((k) => k !== '') : readStdinKeys(),
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
}).then((code) => process.exit(code));
