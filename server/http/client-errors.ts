import { STATUS_CODES, type Server } from 'node:http';
import type { Socket } from 'node:net';

/**
 * What Node's HTTP server keeps from Koa, answered as JSON. What its parser rejects before any
 * request exists (a bad chunk size, a space in the
 * URL, a method it does not know, headers over its limit) answered as JSON like every other
 * error, instead of Node's empty 400. The connection closes after it: the parser cannot go on.
 */
export function answerClientErrorsAsJson(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, code, message] = describe(err.code);
    answer(socket, status, { error: code, message });
  });
  // CONNECT (a tunnel) never reaches Koa: Node hands it to 'connect' listeners, and with none it
  // drops the connection without a word. Keywarden tunnels nothing: a 405 like any other.
  server.on('connect', (_req, socket: Socket) => {
    answer(
      socket,
      405,
      { error: 'method_not_allowed', message: 'CONNECT is not allowed: Keywarden is no tunnel' },
      {
        Allow: ALLOWED,
      },
    );
  });
}

/** The methods Keywarden's routes answer (each route its own subset, in its 405's Allow). */
const ALLOWED = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';

function answer(socket: Socket, status: number, body: object, headers: Record<string, string> = {}): void {
  if (!socket.writable) return void socket.destroy();
  const text = JSON.stringify(body);
  const extra = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n${extra}` +
      `Content-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}

function describe(code: string | undefined): [number, string, string] {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'headers_too_large', 'request headers are too large'];
    case 'HPE_INVALID_METHOD':
      return [501, 'not_implemented', 'method not implemented'];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'ERR_HTTP_HEADERS_TIMEOUT':
      return [408, 'request_timeout', 'the request took too long to arrive'];
    default:
      return [400, 'bad_request', 'the request could not be parsed as HTTP'];
  }
}
