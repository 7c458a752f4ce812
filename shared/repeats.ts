import type { Logger } from './logger.js';

/** How long repeats of one failure are counted before a line sums them up. */
export const REPEAT_WINDOW_MS = 60_000;

/**
 * One failure that may repeat many times a second (a save on a full disk, an upstream that does
 * not answer, an error on every request): its first occurrence is logged, repeats are counted,
 * and the count is logged at most once a window (`… 127,311 more in 60 s`), with the newest
 * message; `recovered` ends it with one line. So a failure that lasts costs a line a minute, and
 * logging never makes a full disk fuller. No timer: the summary goes out with the first repeat
 * after the window, or with the recovery.
 */
export class RepeatedFailure {
  private since: number | null = null;
  private windowStart = 0;
  private repeats = 0;

  constructor(
    private readonly logger: Logger,
    private readonly level: 'error' | 'warn' = 'error',
    private readonly clock: () => number = Date.now,
    private readonly windowMs = REPEAT_WINDOW_MS,
  ) {}

  /** Whether the failure is going on. */
  get failing(): boolean {
    return this.since !== null;
  }

  /** The failure happened (again): logged the first time, then counted. */
  failed(message: string, meta: Record<string, unknown> = {}): void {
    const now = this.clock();
    if (this.since === null) {
      this.since = this.windowStart = now;
      this.repeats = 0;
      this.logger.log(this.level, message, meta);
      return;
    }
    this.repeats++;
    if (now - this.windowStart >= this.windowMs) {
      this.logger.log(this.level, `${message} (${this.summary(now)})`, meta);
      this.windowStart = now;
      this.repeats = 0;
    }
  }

  /** It works again: one line saying so, with the repeats not yet told; nothing if it was not failing. */
  recovered(message: string, meta: Record<string, unknown> = {}): void {
    if (this.since === null) return;
    const now = this.clock();
    const untold = this.repeats > 0 ? `; ${this.summary(now)} before` : '';
    this.logger.info(`${message} (after ${Math.round((now - this.since) / 1000)} s${untold})`, meta);
    this.since = null;
    this.repeats = 0;
  }

  private summary(now: number): string {
    const s = Math.max(1, Math.round((now - this.windowStart) / 1000));
    return `${this.repeats.toLocaleString('en-US')} more in ${s} s`;
  }
}
