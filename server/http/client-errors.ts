import { STATUS_CODES, type Server } from 'node:http';
import type { Socket } from 'node:net';

/**
 * What Node's HTTP parser rejects before any request exists (a bad chunk size, a space in the
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
    const body = JSON.stringify({ error: code, message });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; ` +
        `charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
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
