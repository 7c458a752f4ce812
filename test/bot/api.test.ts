import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { describe, it, type TestContext } from 'node:test';
import { createStatsClient } from '../../bot/api.js';

async function serve(t: TestContext, handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server: Server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const addr = server.address();
  return `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/api/stats`;
}

describe('stats client', () => {
  it('sends the bearer token, asks for every key (credits, invalid keys), and returns the stats', async (t) => {
    let seen: { auth?: string; url?: string } = {};
    const alert = { id: 'pool_low:plantid', event: 'pool_low', severity: 'warning', pool: 'plantid', message: 'm' };
    let alertsAuth: string | undefined;
    const url = await serve(t, (req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.url === '/api/alerts') {
        alertsAuth = req.headers.authorization;
        return res.end(JSON.stringify({ alerts: [alert] }));
      }
      seen = { auth: req.headers.authorization, url: req.url };
      res.end(JSON.stringify({ version: '1', uptimeSec: 1, generatedAt: 5, pools: [] }));
    });
    const r = await createStatsClient(url, 'secret-token-1234567', { timeoutMs: 1000, clock: () => 42 }).fetchStats();
    // The server's alerts in force come with the stats, asked with the same token.
    assert.equal(alertsAuth, 'Bearer secret-token-1234567');
    assert.deepEqual(r, {
      ok: true,
      stats: { version: '1', uptimeSec: 1, generatedAt: 5, pools: [] },
      alerts: [alert],
      at: 42,
    });
    assert.deepEqual(seen, { auth: 'Bearer secret-token-1234567', url: '/api/stats?keys=all' });
  });

  it('turns HTTP errors, refused connections and timeouts into results', async (t) => {
    const url401 = await serve(t, (_req, res) => {
      res.statusCode = 401;
      res.end(JSON.stringify({ error: 'unauthorized', message: 'x' }));
    });
    assert.deepEqual(await createStatsClient(url401, null, { timeoutMs: 1000, clock: () => 1 }).fetchStats(), {
      ok: false,
      error: 'HTTP 401 unauthorized',
      at: 1,
    });

    const degraded = await serve(t, (_req, res) => {
      res.statusCode = 503;
      res.end(JSON.stringify({ error: 'state_unavailable', message: 'x' }));
    });
    assert.deepEqual(await createStatsClient(degraded, null, { timeoutMs: 1000, clock: () => 4 }).fetchStats(), {
      ok: false,
      error: 'HTTP 503 state_unavailable',
      at: 4,
      degraded: true,
    });

    const slow = await serve(t, () => {
      /* never answers */
    });
    const timedOut = await createStatsClient(slow, null, { timeoutMs: 150, clock: () => 2 }).fetchStats();
    assert.deepEqual(timedOut, { ok: false, error: 'timed out after 150 ms', at: 2 });

    const refused = await createStatsClient('http://127.0.0.1:1/api/stats', null, {
      timeoutMs: 1000,
      clock: () => 3,
    }).fetchStats();
    assert.deepEqual(refused, { ok: false, error: 'ECONNREFUSED', at: 3 });
  });
});
