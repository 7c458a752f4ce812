/** The bench's baseline: a bare Koa app answering a constant handout-shaped JSON body. */
import Koa from 'koa';

const body = { pool: 'plantid', key: 'bench-key-000000000000000000000000000000000000000', keyId: '0123456789ab', remaining: 0 };
const app = new Koa();
app.use((ctx) => {
  ctx.body = body;
});
const server = app.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`listening on http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}\n`);
});
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
