import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { closeLogger, createLogger, logWriteFailures } from '../../shared/logger.js';
import { RepeatedFailure } from '../../shared/repeats.js';
import { memoryLogger } from '../helpers/logs.js';
import { tinyTmpfs } from '../helpers/tmp.js';

describe('a failure that repeats', () => {
  it('is one line when it starts, a count a minute while it lasts, one line when it ends', () => {
    const { logger, lines } = memoryLogger();
    let now = 0;
    const trouble = new RepeatedFailure(logger, 'error', () => now);
    trouble.failed('save failed: ENOSPC');
    for (let i = 0; i < 127_311; i++) {
      now += 0.4;
      trouble.failed('save failed: ENOSPC');
    }
    now = 60_000;
    trouble.failed('save failed: ENOSPC');
    for (let i = 0; i < 9; i++) trouble.failed('save failed: ENOSPC');
    now = 65_000;
    trouble.recovered('saving works again');
    trouble.recovered('saving works again'); // nothing was failing any more
    const said = lines.map((l) => JSON.parse(l) as { level: string; message: string });
    assert.deepEqual(
      said.map((l) => `${l.level}: ${l.message}`),
      [
        'error: save failed: ENOSPC',
        'error: save failed: ENOSPC (127,312 more in 60 s)',
        'info: saving works again (after 65 s; 9 more in 5 s before)',
      ],
    );
  });
});

describe('a log file on a full disk', () => {
  it('drops the lines it cannot write and counts them; the process runs on', async (t) => {
    const dir = await tinyTmpfs(t, 64);
    if (!dir) return t.skip('no tmpfs');
    await writeFile(join(dir, 'filler'), Buffer.alloc(64 * 1024)).catch(() => {}); // every byte taken
    const before = logWriteFailures();
    const logger = createLogger({ level: 'info', file: join(dir, 'server.log'), console: false });
    for (let i = 0; i < 2000; i++) logger.info(`line ${i} ${'x'.repeat(100)}`);
    await closeLogger(logger);
    assert.ok(logWriteFailures() > before, 'the failed writes are counted');
  });
});
