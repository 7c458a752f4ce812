/**
 * Redis Cluster: a 3-node cluster started on loopback (redis-server --cluster-enabled yes), two
 * server instances on it through REDIS_CLUSTER_NODES' connection (ioredis Cluster). Each pool's
 * keys share a hash tag, so a pool lives on one node and its script runs there; the pools spread
 * over the nodes; limits hold exactly across both instances.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { loadServerConfig } from '../../../server/config.js';
import { connectRedisBackend } from '../../../server/redis/connect.js';
import type { StatsResponse } from '../../../shared/stats.js';
import { makeKeys } from '../../helpers/keys.js';
import { REDIS_SKIP, TestRedisCluster } from '../../helpers/redis.js';
import { getJson, makeLayout, startInProcess } from '../../helpers/server.js';

const POOLS = ['plantid', 'healthid', 'insects', 'mushrooms', 'crops', 'trees'];
const LIMIT = 4;
const KEYS = 3;

describe('Redis Cluster', { skip: REDIS_SKIP }, () => {
  const cluster = new TestRedisCluster();
  before(() => cluster.start());
  after(() => cluster.destroy());

  it('REDIS_CLUSTER_NODES is read as host:port seeds, and a bad one names itself', () => {
    const c = loadServerConfig({ STATE_BACKEND: 'redis', REDIS_CLUSTER_NODES: '127.0.0.1:7000, [::1]:7001' });
    assert.deepEqual(c.redisClusterNodes, [
      { host: '127.0.0.1', port: 7000 },
      { host: '::1', port: 7001 },
    ]);
    assert.throws(() => loadServerConfig({ REDIS_CLUSTER_NODES: 'redis-a' }), {
      message: 'REDIS_CLUSTER_NODES: "redis-a" is not host:port',
    });
  });

  it('two instances on a 3-node cluster: pools spread over the nodes, every limit exact', async (t) => {
    const keys = Object.fromEntries(POOLS.map((p) => [p, makeKeys(KEYS, p.slice(0, 4))]));
    const layout = await makeLayout(t, keys, Object.fromEntries(POOLS.map((p) => [p, { limits: { total: LIMIT } }])));
    const env = { STATE_BACKEND: 'redis', UPSTREAM_SYNC_INTERVAL_MS: '0' };
    // The connection the server makes from REDIS_CLUSTER_NODES.
    const make = () =>
      startInProcess(t, {
        layout,
        env,
        backend: (logger) =>
          connectRedisBackend({
            url: 'redis://unused',
            clusterNodes: cluster.nodes,
            prefix: 'kwc:',
            allowVolatile: false,
            stateFile: layout.stateFile,
            logger,
          }),
      });
    const [one, two] = [await make(), await make()];

    // Every pool asked far past its keys' limits, from both instances at once.
    const served = new Map<string, number>();
    await Promise.all(
      POOLS.flatMap((pool) =>
        Array.from({ length: KEYS * LIMIT * 2 }, async (_, i) => {
          const r = await getJson(`${(i % 2 ? one : two).url}/api/${pool}`);
          if (r.status === 200) served.set(r.body.keyId, (served.get(r.body.keyId) ?? 0) + 1);
          else assert.equal(r.body.error, 'no_key_available');
        }),
      ),
    );
    assert.equal(served.size, POOLS.length * KEYS);
    for (const [keyId, n] of served) assert.equal(n, LIMIT, `key ${keyId} served ${n}`);
    const stats = (await getJson(`${two.url}/api/stats`)).body as StatsResponse;
    for (const p of stats.pools) if (POOLS.includes(p.name)) assert.equal(p.available, 0, p.name);

    // The pools' keys live on more than one node.
    const holding = [];
    for (const n of cluster.nodes) {
      const c = new Redis(n.port, n.host);
      holding.push((await c.keys('kwc:{*')).length);
      c.disconnect();
    }
    t.diagnostic(`keys per node: ${holding.join(', ')}`);
    assert.ok(holding.filter((k) => k > 0).length >= 2, `pools on ${holding.filter((k) => k > 0).length} node(s)`);
  });
});
