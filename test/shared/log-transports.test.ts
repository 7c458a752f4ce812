/**
 * The log's transports (shared/log-transports.ts) write stdout and the log file off the event
 * loop, 10 ms of lines at a time, and access lines go to the file alone (shared/logger.ts): a
 * burst neither stalls the process nor loses a line on a clean stop. Run in a child process,
 * whose stdout is a pipe, as under pm2.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';
import { accessLogger, closeLogger, createLogger } from '../../shared/logger.js';

const run = promisify(execFile);
const LINES = 30_000;

describe('log transports', () => {
  it(`a burst of ${LINES.toLocaleString('en-US')} lines and as many access lines reaches stdout and the log file whole after a clean stop`, async (t) => {
    const dir = await tempDir(t);
    const script = join(dir, 'burst.mjs');
    const logger = new URL('../../shared/logger.js', import.meta.url).href;
    await writeFile(
      script,
      `import { accessLogger, closeLogger, createLogger, logWriteFailures } from ${JSON.stringify(logger)};
       const log = createLogger({ level: 'info', file: ${JSON.stringify(join(dir, 'server.log'))} });
       const access = accessLogger(log);
       const started = performance.now();
       for (let i = 0; i < ${LINES}; i++) {
         log.info('line ' + i, { i });
         access('access ' + i, { i, access: true });
       }
       const burstMs = performance.now() - started;
       await closeLogger(log);
       process.stderr.write(JSON.stringify({ burstMs, failures: logWriteFailures() }));`,
    );
    const { stdout, stderr } = await run(process.execPath, [...process.execArgv, script], {
      cwd: REPO_ROOT,
      maxBuffer: 64 * 1024 * 1024,
    });
    const out = stdout.trimEnd().split('\n');
    assert.equal(out.length, LINES);
    assert.match(out[0]!, /^\S+ INFO {2}line 0 \{"i":0\}$/u);
    assert.match(out.at(-1)!, new RegExp(`INFO {2}line ${LINES - 1} `, 'u'));
    assert.ok(!stdout.includes('access'), 'access lines go to the log file alone');
    const file = (await readFile(join(dir, 'server.log'), 'utf8')).trimEnd().split('\n');
    assert.equal(file.length, 2 * LINES);
    // In the order logged: each line, then its access line.
    assert.deepEqual(
      file.map((l) => {
        const { i, access } = JSON.parse(l) as { i: number; access?: true };
        return access ? -i - 1 : i;
      }),
      Array.from({ length: 2 * LINES }, (_, n) => (n % 2 ? -(n - 1) / 2 - 1 : n / 2)),
    );
    assert.equal((JSON.parse(stderr) as { failures: number }).failures, 0);
  });

  it('a JSON line starts with its time, level and message; one JSON.stringify refuses is still written', async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'server.log');
    const logger = createLogger({ level: 'info', file, console: false });
    const cyclic: Record<string, unknown> = { name: 'loop' };
    cyclic.self = cyclic;
    logger.info('plain', { pool: 'plantid', status: 200 });
    logger.info('odd', { big: 10n ** 20n, cyclic });
    await closeLogger(logger);
    const [plain, odd] = (await readFile(file, 'utf8')).trimEnd().split('\n') as [string, string];
    assert.match(plain, /^\{"timestamp":"\d{4}-\d\d-\d\dT[\d:.]+Z","level":"info","message":"plain","pool":"plantid"/u);
    const parsed = JSON.parse(odd) as Record<string, unknown>;
    assert.equal(parsed.message, 'odd');
    assert.equal(parsed.big, '100000000000000000000');
    assert.equal((parsed.cyclic as Record<string, unknown>).self, '[Circular]');
  });

  it('an access line is the JSON line logger.info writes to the file, at info, never on the console', async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'server.log');
    const lines: string[] = [];
    const console = new (await import('winston')).default.transports.Stream({
      stream: new (await import('node:stream')).Writable({
        write: (c, _e, done) => void (lines.push(String(c)), done()),
      }),
    });
    const logger = createLogger({ level: 'info', file, console: false, transports: [console] });
    const meta = { pool: 'plantid', status: 201, ms: 3, app: 'garden "app"' };
    logger.info('proxy plantid POST /api/v3/identification -> 201 in 3 ms', meta);
    accessLogger(logger)('proxy plantid POST /api/v3/identification -> 201 in 3 ms', meta);
    accessLogger(logger)('no fields', {});
    const quiet = createLogger({ level: 'warn', file: join(dir, 'quiet.log'), console: false });
    accessLogger(quiet)('not at warn', meta);
    quiet.warn('a warning');
    await closeLogger(logger);
    await closeLogger(quiet);
    const [byLogger, byAccess, bare] = (await readFile(file, 'utf8')).trimEnd().split('\n') as [string, string, string];
    const withoutTime = (l: string) => l.replace(/"timestamp":"[^"]+"/u, '"timestamp":"T"');
    assert.equal(withoutTime(byAccess), withoutTime(byLogger));
    assert.deepEqual(Object.keys(JSON.parse(bare) as object), ['timestamp', 'level', 'message']);
    assert.equal(lines.length, 1, 'the other transports get the logger.info line only');
    assert.deepEqual(
      (await readFile(join(dir, 'quiet.log'), 'utf8'))
        .trimEnd()
        .split('\n')
        .map((l) => (JSON.parse(l) as { message: string }).message),
      ['a warning'],
    );
  });
});
