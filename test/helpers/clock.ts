/** A clock the test moves by hand. */
export class FakeClock {
  constructor(public nowMs = Date.parse('2026-11-21T12:00:00.000Z')) {}
  readonly now = (): number => this.nowMs;
  advance(ms: number): void {
    this.nowMs += ms;
  }
  set(iso: string): void {
    this.nowMs = Date.parse(iso);
  }
}
