/** The keys CLI with an upstream: checks before add, and `check <pool>`'s table, on the files and through a server. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { keyIdOf, maskKey } from '../../shared/keys.js';
import { runCli } from '../helpers/cli.js';
import { FakeClock } from '../helpers/clock.js';
import { FakeKindwise } from '../helpers/kindwise.js';
import { makeKeys } from '../helpers/keys.js';
import { makeLayout, startInProcess } from '../helpers/server.js';

const ADMIN = 'cli-admin-token-0123456789';

async function fakeUpstream(t: TestContext): Promise<FakeKindwise> {
  const fake = new FakeKindwise(new FakeClock().now);
  await fake.start();
  t.after(() => fake.stop());
  return fake;
}

describe('keys CLI with an upstream', () => {
  it('on the files: add refuses a key the upstream rejects (file unchanged), --force adds it; check prints the table and records it', async (t) => {
    const fake = await fakeUpstream(t);
    const [a, bad, b] = makeKeys(3);
    fake.addKey(a!, { limits: { day: 100, total: 5000 }, used: { day: 12, total: 40 } });
    fake.addKey(b!, { limits: { week: 7 }, used: { week: 7 } });
    const layout = await makeLayout(t, { plantid: [a!] }, { plantid: { upstream: { origin: fake.url } } });
    const file = join(layout.keysDir, 'plantid.txt');

    const refused = await runCli(layout, ['add', 'plantid'], { stdin: `${b}\n${bad}\n` });
    assert.equal(refused.code, 1);
    assert.equal(
      refused.stderr,
      `keywarden-keys: the upstream rejects 1 of the keys: ${keyIdOf(bad!)} (${maskKey(bad!)}): The specified api key not found.; nothing was added (--force adds them anyway)\n`,
    );
    assert.equal(await readFile(file, 'utf8'), `${a}\n`);

    const added = await runCli(layout, ['add', 'plantid'], { stdin: `${b}\n` }); // out of credits, but a real key
    assert.deepEqual([added.code, added.stdout], [0, `added ${keyIdOf(b!)} ${maskKey(b!)} to plantid\n`]);
    const forced = await runCli(layout, ['add', 'plantid', '--force'], { stdin: `${bad}\n` });
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /warning: added 1 key\(s\) the upstream rejects, as forced/u);
    assert.equal(await readFile(file, 'utf8'), `${a}\n${b}\n${bad}\n`);

    const check = await runCli(layout, ['check', 'plantid']);
    assert.equal(check.code, 0, check.stderr);
    assert.equal(
      check.stdout,
      [
        'plantid: 3 keys checked',
        `  keyId         key          upstream         day    week   month   total  reason`,
        `  ${keyIdOf(a!)}  ${maskKey(a!)}    ok                88       -       -    4960`,
        `  ${keyIdOf(b!)}  ${maskKey(b!)}    exhausted          -       0       -       -  Your api key reached its week credit limit (7).`,
        `  ${keyIdOf(bad!)}  ${maskKey(bad!)}    invalid            -       -       -       -  The specified api key not found.`,
        '',
      ].join('\n'),
    );
    const list = await runCli(layout, ['list', 'plantid']);
    assert.match(
      list.stdout,
      new RegExp(`${keyIdOf(bad!)}\\s+\\S+\\s+invalid\\s.*\\(upstream: The specified api key not found\\.\\)`, 'u'),
    );
    assert.match(
      list.stdout,
      new RegExp(
        `${keyIdOf(b!)}\\s+\\S+\\s+exhausted\\s.*\\(upstream: Your api key reached its week credit limit \\(7\\)\\., until `,
        'u',
      ),
    );
    for (const out of [check.stdout, list.stdout, refused.stderr, forced.stdout])
      for (const k of [a!, b!, bad!]) assert.equal(out.includes(k), false);

    const none = await runCli(layout, ['check', 'healthid']);
    assert.deepEqual(
      [none.code, none.stderr],
      [1, 'keywarden-keys: pool healthid has no upstream to check its keys with (pools.json "upstream")\n'],
    );
  });

  it('through a running server: the same checks, made and recorded by the server', async (t) => {
    const fake = await fakeUpstream(t);
    const [a, bad] = makeKeys(2);
    fake.addKey(a!, { limits: { month: 300 } });
    const s = await startInProcess(t, {
      keys: { plantid: [a!] },
      pools: { plantid: { upstream: { origin: fake.url } } },
      env: { ADMIN_TOKEN: ADMIN, UPSTREAM_SYNC_INTERVAL_MS: '0' },
    });
    const env = { KEYWARDEN_URL: s.url, ADMIN_TOKEN: ADMIN };
    const refused = await runCli(s.layout, ['add', 'plantid'], { stdin: `${bad}\n`, env });
    assert.equal(refused.code, 1);
    // The same line as offline: both run the one add operation, the CLI says what --force does.
    assert.equal(
      refused.stderr,
      `keywarden-keys: the upstream rejects 1 of the keys: ${keyIdOf(bad!)} (${maskKey(bad!)}): The specified api key not found.; nothing was added (--force adds them anyway)\n`,
    );
    const check = await runCli(s.layout, ['check', 'plantid'], { env });
    assert.equal(check.code, 0, check.stderr);
    assert.match(
      check.stdout,
      new RegExp(
        `^plantid: 1 key checked\\n.*\\n  ${keyIdOf(a!)}  ${maskKey(a!)}    ok                 -       -     300       -\\n$`,
        'u',
      ),
    );
    assert.equal(fake.received('/api/v3/usage_info').length, 2);
  });
});
