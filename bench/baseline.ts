/** The bench's baseline: a bare Koa app answering a constant handout-shaped JSON body. */
import { createServer } from 'node:http';
import Koa from 'koa';
import { announce } from './lib.js';

const body = {
  pool: 'plantid',
  key: 'bench-key-000000000000000000000000000000000000000',
  keyId: '0123456789ab',
  remaining: 0,
};
const app = new Koa();
app.use((ctx) => {
  ctx.body = body;
});
announce(createServer(app.callback()));
