import type { Context } from 'koa';
import { badRequest, HttpError, payloadTooLarge } from './errors.js';

/** Largest accepted request body. */
export const MAX_BODY_BYTES = 16 * 1024;

/** A request body as it arrived, in the pieces it arrived in; 408 when it takes longer than `timeoutMs`. */
function readRaw(ctx: Context, limitBytes: number, timeoutMs: number | null): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const req = ctx.req;
    if (timeoutMs !== null) {
      const timer = setTimeout(() => {
        ctx.set('Connection', 'close'); // the rest of the body is not read
        req.pause();
        reject(new HttpError(408, 'body_timeout', `the request body did not arrive within ${timeoutMs} ms`));
      }, timeoutMs);
      req.once('end', () => clearTimeout(timer));
      req.once('close', () => clearTimeout(timer));
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limitBytes) {
        // Keep draining (so the client can read the 413) but stop collecting.
        over = true;
        chunks.length = 0;
        ctx.set('Connection', 'close');
        return;
      }
      if (!over) chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => (over ? reject(payloadTooLarge(limitBytes)) : resolve(chunks)));
    req.once('error', reject);
    req.once('aborted', () => reject(badRequest('aborted', 'request aborted')));
  });
}

/**
 * Reads a request body of at most `limitBytes` whole, in the pieces it arrived in (a body of
 * megabytes is passed on as is, never copied into one buffer): 413 past the limit, at once when
 * Content-Length says so.
 */
export function readBody(ctx: Context, limitBytes: number, timeoutMs: number | null = null): Promise<Buffer[]> {
  const declared = Number(ctx.get('content-length') || NaN);
  if (Number.isFinite(declared) && declared > limitBytes) {
    ctx.set('Connection', 'close');
    ctx.req.resume();
    return Promise.reject(payloadTooLarge(limitBytes));
  }
  return readRaw(ctx, limitBytes, timeoutMs);
}

/** Reads a JSON request body of at most `limitBytes`: 413 past the limit, 400 when it is not JSON. */
export async function readJson(ctx: Context, limitBytes = MAX_BODY_BYTES): Promise<unknown> {
  const text = Buffer.concat(await readBody(ctx, limitBytes)).toString('utf8');
  if (text.trim() === '') throw badRequest('invalid_json', 'request body is empty; send a JSON object');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequest('invalid_json', `request body is not valid JSON: ${(err as Error).message}`);
  }
}
