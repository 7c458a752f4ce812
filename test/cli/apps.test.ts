/** `keys app …` and `keys audit`: offline on the apps file (actor `cli`), and through a running server's admin API. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { makeKeys } from '../helpers/keys.js';
import { call, makeLayout, startInProcess } from '../helpers/server.js';

const ADMIN = 'cli-admin-token-0123456789';

describe('keys CLI: apps and the audit log', () => {
  it('offline: add prints the token once and stores its hash; update, rotate --grace, disable, list, remove; audit by cli', async (t) => {
    const layout = await makeLayout(t, { plantid: makeKeys(2) });
    const added = await runCli(layout, [
      'app',
      'add',
      'mobile',
      '--pools',
      'plantid',
      '--mode',
      'proxy',
      '--budget',
      'plantid:day=100,month=2000',
    ]);
    assert.equal(added.code, 0, added.stderr);
    const token = /token \(shown once; only its hash is kept\): (kwa_\S+)/u.exec(added.stdout)![1]!;
    const file = await readFile(join(layout.dir, 'apps.json'), 'utf8');
    assert.ok(!file.includes(token) && !file.includes(token.split('_').pop()!), 'the token is in apps.json');
    assert.deepEqual(JSON.parse(file).apps[0].budget, { plantid: { day: 100, month: 2000 } });

    const bad = await runCli(layout, ['app', 'add', 'Bad Name']);
    assert.deepEqual([bad.code, bad.stderr.trim()], [1, 'keywarden-keys: name: must be 1-64 of a-z, 0-9, _ and -']);
    const unknownPool = await runCli(layout, ['app', 'add', 'x', '--pools', 'nosuch']);
    assert.match(unknownPool.stderr, /no pool named nosuch/u);

    assert.equal((await runCli(layout, ['app', 'update', 'mobile', '--stats', '--rate', '60'])).code, 0);
    const rotated = await runCli(layout, ['app', 'rotate', 'mobile', '--grace', '24h']);
    assert.match(rotated.stdout, /new token for mobile \(shown once\): kwa_\S+\nthe old token works until \S+Z/u);
    assert.equal((await runCli(layout, ['app', 'disable', 'mobile'])).stdout, 'disabled app mobile\n');
    const listed = (await runCli(layout, ['app', 'list'])).stdout;
    assert.match(listed, /^mobile {2}\(proxy, stats, DISABLED\) {2}pools: plantid/u);
    assert.match(listed, /rate: 60\/min/u);
    assert.equal((await runCli(layout, ['app', 'remove', 'mobile'])).code, 0);
    assert.equal(
      (await runCli(layout, ['app', 'show', 'mobile'])).stderr.trim(),
      'keywarden-keys: no app named mobile',
    );

    const audit = (await runCli(layout, ['audit'])).stdout.trim().split('\n');
    assert.deepEqual(
      audit.map((l) => l.split(/\s{2}/u).slice(1, 5).join(' ')),
      [
        'cli app.add app mobile ok',
        'cli app.add app Bad Name invalid_body',
        'cli app.add app x unknown_pool',
        'cli app.update app mobile ok',
        'cli app.rotate app mobile ok',
        'cli app.disable app mobile ok',
        'cli app.remove app mobile ok',
      ],
    );
  });

  it("through a running server: the app's token works at once, and the audit names the admin", async (t) => {
    const s = await startInProcess(t, { keys: { plantid: makeKeys(2) }, env: { ADMIN_TOKEN: ADMIN } });
    const env = { KEYWARDEN_URL: s.url, ADMIN_TOKEN: ADMIN, APPS_FILE: join(s.layout.dir, 'apps.json') };
    const added = await runCli(s.layout, ['app', 'add', 'web', '--mode', 'handout'], { env });
    assert.equal(added.code, 0, added.stderr);
    const token = /(kwa_\S+)/u.exec(added.stdout)![1]!;
    assert.equal((await call(`${s.url}/api/plantid`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
    const audit = (await runCli(s.layout, ['audit', '--limit', '5'], { env })).stdout;
    assert.match(audit, /Z {2}admin {2}app\.add {2}app web {2}ok {2}from \S*127\.0\.0\.1\n$/u);
  });
});
