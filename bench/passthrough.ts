/**
 * The proxy bench's baseline: a minimal pass-through proxy with undici. Every request goes to
 * UPSTREAM with its method, headers (less hop-by-hop ones) and body streamed, a fixed key header
 * put in, and the answer streamed back. No auth, no key choice, no failover, no log: the floor a
 * proxy over undici costs.
 */
import { createServer } from 'node:http';
import { announce } from './lib.js';
import { pipeline } from 'node:stream/promises';
import { Agent, request, type Dispatcher } from 'undici';

const upstream = process.env.UPSTREAM!;
const agent = new Agent({ keepAliveTimeout: 30_000, connections: 128 });
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);
/** Not sent upstream besides: the caller's Host, and its length (undici frames the streamed body). */
const NOT_SENT = new Set([...HOP, 'host', 'content-length']);

const server = createServer(async (req, res) => {
  const headers: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2)
    if (!NOT_SENT.has(req.rawHeaders[i]!.toLowerCase())) headers.push(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  headers.push('api-key', 'bench-key');
  try {
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    const up = await request(`${upstream}${req.url}`, {
      method: req.method as Dispatcher.HttpMethod,
      headers,
      body: hasBody ? req : null,
      dispatcher: agent,
    });
    const out: string[] = [];
    for (const [k, v] of Object.entries(up.headers))
      if (v !== undefined && !HOP.has(k)) for (const x of Array.isArray(v) ? v : [v]) out.push(k, x);
    res.writeHead(up.statusCode, out);
    await pipeline(up.body, res);
  } catch {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  }
});
announce(server);
