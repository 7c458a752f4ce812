import type { IncomingMessage } from 'node:http';
import { badRequest } from './errors.js';

/**
 * A request body of a declared length (so never over the proxy's limit, which was checked
 * against that length), sent upstream as it arrives and kept whole, so a failover can send it
 * again: each `read()` yields every piece from the first, the ones still on their way as they
 * come. Sending while the caller still uploads is what a pass-through proxy does; keeping the
 * pieces is what lets another key take the request after a refusal.
 */
export class ReplayableBody {
  private readonly pieces: Buffer[] = [];
  private ended = false;
  private failure: Error | null = null;
  private waiting: Array<() => void> = [];

  constructor(req: IncomingMessage) {
    req.on('data', (piece: Buffer) => {
      this.pieces.push(piece);
      this.wake();
    });
    req.once('end', () => {
      this.ended = true;
      this.wake();
    });
    const fail = () => {
      this.failure ??= badRequest('aborted', 'request aborted');
      this.wake();
    };
    req.once('aborted', fail);
    req.once('error', fail);
  }

  private wake(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) w();
  }

  /** The body from its first byte: what has arrived at once, the rest as it arrives. */
  async *read(): AsyncGenerator<Buffer> {
    for (let i = 0; ; ) {
      while (i < this.pieces.length) yield this.pieces[i++]!;
      if (this.failure) throw this.failure;
      if (this.ended) return;
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }
}
