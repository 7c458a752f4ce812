import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { keyIdOf, maskKey } from '../../../shared/keys.js';
import { STATE_VERSION } from '../../../server/state/format.js';
import { makeKeys } from '../../helpers/keys.js';
import { getJson, postJson, startInProcess } from '../../helpers/server.js';

const ADMIN = 'admin-token-0123456789abcdef';
const auth = { authorization: `Bearer ${ADMIN}` };

describe('admin API', () => {
  it('is off (404) without ADMIN_TOKEN and needs the token when on', async (t) => {
    const off = await startInProcess(t, { keys: { plantid: makeKeys(1) } });
    assert.equal((await getJson(`${off.url}/admin/pools`, { headers: auth })).status, 404);
    const on = await startInProcess(t, { keys: { plantid: makeKeys(1) }, env: { ADMIN_TOKEN: ADMIN } });
    assert.equal((await getJson(`${on.url}/admin/pools`)).status, 401);
    assert.equal(
      (await getJson(`${on.url}/admin/pools`, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status,
      401,
    );
    assert.equal((await getJson(`${on.url}/admin/pools`, { headers: auth })).status, 200);
  });

  it('exports the state as a state file of the current version, which imports back; pools it does not have, __proto__ among them, are listed as skipped', async (t) => {
    const keys = makeKeys(2);
    const from = await startInProcess(t, { keys: { plantid: keys }, env: { ADMIN_TOKEN: ADMIN } });
    for (let i = 0; i < 3; i++) await getJson(`${from.url}/api/plantid`);
    const exported = await getJson(`${from.url}/admin/state`, { headers: auth });
    assert.equal(exported.body.version, STATE_VERSION);
    assert.ok(!JSON.stringify(exported.body).includes(keys[0]!), 'an export holds a plaintext key');
    const totals = (s: { pools: Array<{ keys: Array<{ served: { total: number } }> }> }) =>
      s.pools[0]!.keys.map((k) => k.served.total).sort();

    const to = await startInProcess(t, { keys: { plantid: keys }, env: { ADMIN_TOKEN: ADMIN } });
    // The JSON text as a client would send it: `__proto__` as a key of its own.
    const text = JSON.stringify(exported.body).replace(
      '"pools":{',
      '"pools":{"__proto__":{"keys":{}},"constructor":{"keys":{}},"elsewhere":{"keys":{}},',
    );
    const imported = await postJson(`${to.url}/admin/state`, text, auth);
    assert.equal(imported.status, 200, JSON.stringify(imported.body));
    assert.deepEqual(imported.body.imported, ['plantid', 'healthid']);
    assert.deepEqual(imported.body.skipped, ['__proto__', 'constructor', 'elsewhere']);
    assert.deepEqual(totals((await getJson(`${to.url}/api/stats`)).body), [1, 2]);
  });

  it('clears a pool throttle: handouts resume at once', async (t) => {
    const keys = makeKeys(2);
    const s = await startInProcess(t, { keys: { plantid: keys }, env: { ADMIN_TOKEN: ADMIN } });
    for (const k of keys)
      await postJson(`${s.url}/api/plantid/report`, { keyId: keyIdOf(k), status: 429, retryAfter: 3600 });
    assert.equal((await getJson(`${s.url}/api/plantid`)).body.error, 'pool_throttled');
    const cleared = await postJson(`${s.url}/admin/pools/plantid/clear-throttle`, '', auth);
    assert.deepEqual([cleared.status, cleared.body], [200, { pool: 'plantid', cleared: true }]);
    assert.equal((await getJson(`${s.url}/api/plantid`)).status, 200);
    assert.deepEqual((await postJson(`${s.url}/admin/pools/plantid/clear-throttle`, '', auth)).body, {
      pool: 'plantid',
      cleared: false,
    });
    assert.equal((await postJson(`${s.url}/admin/pools/nosuch/clear-throttle`, '', auth)).status, 404);
    assert.ok(s.lines.some((l) => /admin: cleared the throttle of pool plantid/u.test(l)));
  });

  it('adds keys through the key file, visible in stats at once; a duplicate is 409', async (t) => {
    const [a, b, c] = makeKeys(3);
    const s = await startInProcess(t, { keys: { plantid: `# ops keys\n${a}\n` }, env: { ADMIN_TOKEN: ADMIN } });
    const r = await postJson(`${s.url}/admin/pools/plantid/keys`, { keys: [b, c] }, auth);
    assert.equal(r.status, 201);
    assert.deepEqual(r.body, {
      pool: 'plantid',
      added: [
        { keyId: keyIdOf(b!), masked: maskKey(b!) },
        { keyId: keyIdOf(c!), masked: maskKey(c!) },
      ],
      checked: null,
      warnings: [],
    });
    assert.equal((await getJson(`${s.url}/api/stats`)).body.pools[0].total, 3);
    assert.equal(await readFile(join(s.layout.keysDir, 'plantid.txt'), 'utf8'), `# ops keys\n${a}\n${b}\n${c}\n`);
    const dup = await postJson(`${s.url}/admin/pools/plantid/keys`, { key: a }, auth);
    assert.equal(dup.status, 409);
    assert.deepEqual([dup.body.error, dup.body.keyIds], ['duplicate_key', [keyIdOf(a!)]]);
    assert.ok(!JSON.stringify(dup.body).includes(a!));
    assert.equal((await readFile(join(s.layout.keysDir, 'plantid.txt'), 'utf8')).split(a!).length, 2);
    assert.equal(
      (await postJson(`${s.url}/admin/pools/plantid/keys`, { key: 'bad key' }, auth)).body.error,
      'invalid_key',
    );
    assert.equal((await postJson(`${s.url}/admin/pools/plantid/keys`, { nope: 1 }, auth)).status, 400);
    assert.equal((await postJson(`${s.url}/admin/pools/nosuch/keys`, { key: 'k-aaaaaaaaaaaa' }, auth)).status, 404);
    assert.ok(!s.lines.some((l) => l.includes(b!) || l.includes(c!)), 'a log line holds an added key');
  });

  it('removes a key by keyId, keeping the other lines; unknown keyId is 404', async (t) => {
    const [a, b] = makeKeys(2);
    const s = await startInProcess(t, {
      keys: { plantid: `${a}\n# b below\n${b}  # expires=2030-01-01\n` },
      env: { ADMIN_TOKEN: ADMIN },
    });
    const r = await getJson(`${s.url}/admin/pools/plantid/keys/${keyIdOf(b!)}`, { method: 'DELETE', headers: auth });
    assert.equal(r.status, 204);
    assert.equal(await readFile(join(s.layout.keysDir, 'plantid.txt'), 'utf8'), `${a}\n# b below\n`);
    assert.equal((await getJson(`${s.url}/api/stats`)).body.pools[0].total, 1);
    assert.equal(
      (await getJson(`${s.url}/admin/pools/plantid/keys/${keyIdOf(b!)}`, { method: 'DELETE', headers: auth })).status,
      404,
    );
    assert.equal(
      (await getJson(`${s.url}/admin/pools/plantid/keys/NOTHEX`, { method: 'DELETE', headers: auth })).status,
      400,
    );
  });

  it('disables, enables and resets a key; lists a pool masked', async (t) => {
    const [a, b] = makeKeys(2);
    const s = await startInProcess(t, { keys: { plantid: [a!, b!] }, env: { ADMIN_TOKEN: ADMIN } });
    for (let i = 0; i < 4; i++) await getJson(`${s.url}/api/plantid`);
    const id = keyIdOf(a!);
    assert.equal(
      (await postJson(`${s.url}/admin/pools/plantid/keys/${id}/disable`, { reason: 'leaked' }, auth)).status,
      204,
    );
    let list = (await getJson(`${s.url}/admin/pools/plantid/keys`, { headers: auth })).body;
    assert.deepEqual(
      [list.keys[0].status, list.keys[0].reason, list.keys[0].masked],
      ['disabled', 'disabled by admin: leaked', maskKey(a!)],
    );
    assert.ok(!JSON.stringify(list).includes(a!));
    assert.equal((await getJson(`${s.url}/api/plantid`)).body.key, b);
    assert.equal((await postJson(`${s.url}/admin/pools/plantid/keys/${id}/enable`, '', auth)).status, 204);
    assert.equal((await postJson(`${s.url}/admin/pools/plantid/keys/${id}/reset`, '', auth)).status, 204);
    list = (await getJson(`${s.url}/admin/pools/plantid/keys`, { headers: auth })).body;
    assert.deepEqual([list.keys[0].status, list.keys[0].served.total, list.keys[1].served.total], ['available', 0, 3]);
    assert.equal((await postJson(`${s.url}/admin/pools/plantid/keys/abcdefabcdef/enable`, '', auth)).status, 404);
  });

  it('edits made by hand meanwhile are kept', async (t) => {
    const [a, b, c] = makeKeys(3);
    const s = await startInProcess(t, { keys: { plantid: [a!] }, env: { ADMIN_TOKEN: ADMIN } });
    await writeFile(join(s.layout.keysDir, 'plantid.txt'), `${a}\n${b}\n`);
    await postJson(`${s.url}/admin/pools/plantid/keys`, { key: c }, auth);
    assert.equal(await readFile(join(s.layout.keysDir, 'plantid.txt'), 'utf8'), `${a}\n${b}\n${c}\n`);
    assert.equal((await getJson(`${s.url}/api/stats`)).body.pools[0].total, 3);
  });
});
