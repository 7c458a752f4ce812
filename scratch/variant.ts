import Koa from 'koa';
import { PoolRegistry } from '../server/registry.js';
import { loadPools } from '../server/config.js';
import { createLogger } from '../shared/logger.js';
const V = process.env.V ?? 'full';
const logger = createLogger({ level: 'info', file: null, console: false });
const registry = new PoolRegistry({ keysDir: '/tmp/prof/keys', policies: await loadPools('/tmp/prof/keys'), clock: Date.now, logger });
await registry.loadAllKeyFiles();
const app = new Koa();
app.use(async (ctx) => {
  if (V === 'nomutex') {
    const e = (registry as any).entries.get('plantid');
    const r = e.pool.handout(Date.now());
    ctx.body = { pool: 'plantid', key: r.key, keyId: r.keyId, remaining: r.remaining };
    return;
  }
  if (V === 'const') { ctx.body = { pool: 'plantid', key: 'x', keyId: 'y', remaining: 0 }; return; }
  const r: any = await registry.handout('plantid');
  ctx.body = { pool: 'plantid', key: r.key, keyId: r.keyId, remaining: r.remaining };
});
const server = app.listen(5096, '127.0.0.1', () => console.log('listening'));
process.on('SIGTERM', () => { server.closeAllConnections(); server.close(() => process.exit(0)); });
