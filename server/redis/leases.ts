import type { Handout, KeyNow, PoolBackend, ReportResult, UpstreamCheck } from '../pools/contract.js';
import type { Spender } from '../pools/budgets.js';
import { reservationBlock } from '../pools/policy.js';
import type { AdminAction, ReportInput } from '../pools/rules.js';
import type { PoolState } from '../pools/records.js';
import type { HistoryRange } from '../pools/activity.js';
import type { KeyRows } from '../pools/stats.js';
import type { RedisPool } from './pool.js';

/**
 * How long a lease lives at most: the longest a report, an admin action or an upstream verdict
 * on another instance waits to reach this one (a lease is never renewed; the next one is asked
 * of Redis, which knows them all).
 */
export const LEASE_MS = 500;
/** A block is sized to last about this long at the rate its app draws uses. */
const LEASE_TARGET_MS = 200;
/** The largest block of a pool without limits (with limits: reservationBlock, 1/50 of the smallest). */
const MAX_BLOCK = 1000;
/** Leases an app holds at once, each on the key the strategy gave it, so handouts alternate keys. */
const RING = 4;

/** Uses of one key taken from Redis in one script run, handed out here. */
interface Lease {
  readonly keyId: string;
  readonly key: string;
  /** Uses the lease took (all counted as used in Redis from the start). */
  readonly size: number;
  left: number;
  readonly takenAt: number;
  readonly expiresAt: number;
  /** What the key had left beyond the block when it was taken (null: no limit). */
  readonly remaining: number | null;
  /** Uses served in the lease's current turn (round-robin's rotateEvery). */
  turn: number;
}

/** One app's leases (or the leases of handouts for no app). */
class Book {
  ring: Lease[] = [];
  cursor = 0;
  block = 1;
  fetching: Promise<Handout> | null = null;

  constructor(readonly app: string | undefined) {}
}

/**
 * A Redis pool that hands out from leased blocks: one script run takes a block of uses of a key
 * (its size adapts to the rate, cut as a limit or budget nears: rules.ts leaseSize), counted as
 * used in Redis at once, and this instance hands them out without asking Redis again. What it
 * does not use goes back (`recount`) when the lease lapses, before it reads the pool's numbers,
 * and at a clean stop; an instance killed with leases out leaves their uses counted, so nothing
 * is ever handed out twice or past a limit. Every other operation is the Redis pool's, after
 * the leases it could change have gone back.
 *
 * What the strategies mean under leases: each lease is the key the strategy names in Redis at
 * that moment (round-robin: the next in turn; fill-first: the first with room; least recently
 * used: the one used longest ago; random: any), and an instance alternates among up to RING
 * leased keys (round-robin every rotateEvery uses, least recently used every use, random at
 * random, fill-first not at all). So across the fleet each key's count is within one block per
 * instance of what one instance asking Redis for every handout would have made.
 */
export class LeasingPool implements PoolBackend {
  private readonly books = new Map<string, Book>();
  private readonly maxBlock: number;
  private readonly returning = new Set<Promise<unknown>>();
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;
  /**
   * Times leases were voided (a report, admin action or verdict on a key, a new key file or
   * state). A lease asked for before one and landing after it goes back at once: its script may
   * have run before the change in Redis, and its reply may land after the void was applied here.
   */
  private voided = 0;

  constructor(
    private readonly inner: RedisPool,
    private readonly clock: () => number,
    private readonly rng: () => number = Math.random,
  ) {
    this.maxBlock = reservationBlock(inner.policy.limits) || MAX_BLOCK;
    // A lease that lapses while no handout comes goes back all the same, for other instances to take.
    this.sweeper = setInterval(() => this.sweep(this.clock()), LEASE_MS);
    this.sweeper.unref();
  }

  get name(): string {
    return this.inner.name;
  }

  get policy() {
    return this.inner.policy;
  }

  get size(): number {
    return this.inner.size;
  }

  async handout(now: number, want = 1, spender?: Spender): Promise<Handout> {
    if (this.closed) return this.inner.handout(now, want, spender);
    const book = this.bookOf(spender?.app);
    for (let tries = 0; ; tries++) {
      const served = this.serve(book, now, want);
      if (served) {
        if (this.wantsAnother(book)) this.fetch(book, now, want, spender).catch(() => undefined);
        return served;
      }
      // Other requests took every lease this one waited for: ask Redis for this handout alone.
      if (tries === 3) return this.inner.handout(now, want, spender);
      const got = await this.fetch(book, now, want, spender);
      if (!got.ok) return got;
    }
  }

  private bookOf(app: string | undefined): Book {
    let book = this.books.get(app ?? '');
    if (!book) this.books.set(app ?? '', (book = new Book(app)));
    return book;
  }

  /** A handout from a lease the strategy would take next, or null when none has `want` uses left. */
  private serve(book: Book, now: number, want: number): Handout | null {
    this.lapse(book, now);
    const lease = this.pick(book, want);
    if (!lease) return null;
    lease.left -= want;
    lease.turn += want;
    if (lease.left === 0) {
      book.ring.splice(book.ring.indexOf(lease), 1);
      // Used up: the next block lasts about LEASE_TARGET_MS at the rate this one went.
      const rate = lease.size / Math.max(1, now - lease.takenAt);
      book.block = Math.max(1, Math.min(this.maxBlock, lease.size * 8, Math.ceil(rate * LEASE_TARGET_MS)));
    }
    return { ok: true, key: lease.key, keyId: lease.keyId, remaining: this.remaining(lease), granted: want };
  }

  /**
   * What a handout from `lease` says is left: under round-robin the lease's turn (Redis counted the
   * whole block in the key's), otherwise what the key had beyond the block and what the lease has.
   */
  private remaining(lease: Lease): number | null {
    const policy = this.inner.policy;
    if (policy.strategy === 'round-robin') return Math.min(Math.max(0, policy.rotateEvery - lease.turn), lease.left);
    return lease.remaining === null ? null : lease.remaining + lease.left;
  }

  private pick(book: Book, want: number): Lease | null {
    const ring = book.ring;
    if (ring.length === 0) return null;
    const strategy = this.inner.policy.strategy;
    if (strategy === 'fill-first') return ring.find((l) => l.left >= want) ?? null;
    if (strategy === 'random') {
      const fit = ring.filter((l) => l.left >= want);
      return fit.length === 0 ? null : fit[Math.min(fit.length - 1, Math.floor(this.rng() * fit.length))]!;
    }
    const turns = strategy === 'round-robin' ? this.inner.policy.rotateEvery : 1;
    const at = book.cursor % ring.length;
    if (ring[at]!.left >= want && ring[at]!.turn < turns) return ring[at]!;
    for (let i = 1; i <= ring.length; i++) {
      const next = (at + i) % ring.length;
      const lease = ring[next]!;
      if (lease.left >= want) {
        book.cursor = next;
        lease.turn = 0;
        return lease;
      }
    }
    return null;
  }

  /**
   * Whether to take one more lease while serving: fewer than RING keys leased, none being asked for,
   * and uses drawn fast enough for blocks (one use at a time alternates keys by itself, and holds
   * none of a nearly spent limit away from other instances).
   */
  private wantsAnother(book: Book, fetching = false): boolean {
    return (
      (fetching || book.fetching === null) &&
      book.block > 1 &&
      this.inner.policy.strategy !== 'fill-first' &&
      book.ring.length < Math.min(RING, this.inner.size)
    );
  }

  /**
   * Takes leases for `book`: as many as the ring lacks when uses are drawn in blocks, so a ring
   * that lapsed refills in one round trip instead of one key's block serving alone meanwhile
   * (script runs sent back to back; each takes the key its strategy names next). Requests that
   * come meanwhile wait for the same ones. Answers the first lease, or why there was none.
   */
  private fetch(book: Book, now: number, want: number, spender: Spender | undefined): Promise<Handout> {
    if (book.fetching) return book.fetching;
    const count = this.wantsAnother(book, true) ? Math.min(RING, this.inner.size) - book.ring.length : 1;
    const block = Math.max(want, book.block);
    const voided = this.voided;
    const asked = Promise.all(
      Array.from({ length: Math.max(1, count) }, () => this.inner.handout(now, want, spender, block)),
    ).then((answers) => {
      const end = Math.min(now + LEASE_MS, this.inner.clock.bounds('minute', now).endMs);
      for (const h of answers) {
        if (!h.ok) continue;
        const lease: Lease = {
          keyId: h.keyId,
          key: h.key,
          size: h.granted,
          left: h.granted,
          takenAt: now,
          // Uses are counted in the windows of the moment they were leased: none is handed out after
          // the minute it was counted in.
          expiresAt: end,
          remaining: h.remaining,
          turn: 0,
        };
        if (voided === this.voided) book.ring.push(lease);
        else this.giveBack(book, lease);
      }
      return answers.find((h) => h.ok) ?? answers[0]!;
    });
    book.fetching = asked;
    const done = () => {
      if (book.fetching === asked) book.fetching = null;
    };
    asked.then(done, done);
    return asked;
  }

  /** Gives back what lapsed leases did not use; the next block is what this one served. */
  private lapse(book: Book, now: number): void {
    for (let i = book.ring.length - 1; i >= 0; i--) {
      const lease = book.ring[i]!;
      if (now < lease.expiresAt) continue;
      book.ring.splice(i, 1);
      book.block = Math.max(1, Math.min(this.maxBlock, lease.size - lease.left));
      this.giveBack(book, lease);
    }
  }

  private sweep(now: number): void {
    for (const book of this.books.values()) this.lapse(book, now);
  }

  private giveBack(book: Book, lease: Lease): void {
    if (lease.left <= 0) return;
    const left = lease.left;
    lease.left = 0;
    // Redis down: the uses stay counted as used, which never over-issues.
    const back = this.inner
      .recount(lease.keyId, -left, lease.takenAt, this.clock(), book.app)
      .catch(() => false)
      .finally(() => this.returning.delete(back));
    this.returning.add(back);
  }

  /**
   * Voids the leases on `keyId` (every lease: undefined), those being asked for as well, and gives
   * them back. Called once the change is in Redis: a lease taken after it knows of it.
   */
  private voidLeases(keyId?: string): Promise<void> {
    this.voided++;
    return this.giveBackAll(keyId);
  }

  /** Gives back the leases on `keyId` (every lease: undefined), and waits until Redis has them. */
  private async giveBackAll(keyId?: string): Promise<void> {
    for (const book of this.books.values()) {
      book.ring = book.ring.filter((lease) => {
        if (keyId !== undefined && lease.keyId !== keyId) return true;
        this.giveBack(book, lease);
        return false;
      });
    }
    await Promise.all([...this.returning]);
  }

  /** A clean stop: every lease goes back, those still being asked for as well; later handouts ask Redis. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    await Promise.all([...this.books.values()].map((b) => b.fetching?.catch(() => undefined)));
    await this.giveBackAll();
  }

  // ---------------------------------------------------------------- the Redis pool's, after the leases they change

  async setKeys(lines: Parameters<RedisPool['setKeys']>[0], now: number) {
    await this.giveBackAll();
    const summary = await this.inner.setKeys(lines, now);
    await this.voidLeases();
    return summary;
  }

  async report(input: ReportInput, now: number): Promise<ReportResult> {
    const r = await this.inner.report(input, now);
    // The key is out (or, after a 429, maybe the whole pool): its leases end here at once.
    if (r.ok && r.outcome !== 'ok') await this.voidLeases(r.outcome === 'rate_limited' ? undefined : input.keyId);
    return r;
  }

  async clearThrottle(now: number): Promise<boolean> {
    return this.inner.clearThrottle(now);
  }

  async recordUpstream(check: UpstreamCheck, now: number) {
    if (!check.reached) return this.inner.recordUpstream(check, now);
    await this.giveBackAll(check.keyId); // before: the upstream's count replaces the key's
    const recorded = await this.inner.recordUpstream(check, now);
    await this.voidLeases(check.keyId);
    return recorded;
  }

  recount(keyId: string, delta: number, at: number, now: number, app?: string): Promise<boolean> {
    return this.inner.recount(keyId, delta, at, now, app);
  }

  async appUsage(now: number) {
    await this.giveBackAll();
    return this.inner.appUsage(now);
  }

  keyStatus(keyIds: readonly string[], now: number): Promise<Array<KeyNow | null>> {
    return this.inner.keyStatus(keyIds, now);
  }

  pinned(ref: string, now: number): Promise<string | null> {
    return this.inner.pinned(ref, now);
  }

  pin(refs: readonly string[], keyId: string, now: number): Promise<void> {
    return this.inner.pin(refs, keyId, now);
  }

  pinCount(): Promise<number> {
    return this.inner.pinCount();
  }

  async admin(action: AdminAction, keyId: string, now: number, reason?: string): Promise<boolean> {
    await this.giveBackAll(keyId); // before: a reset must not take back uses it zeroed
    const done = await this.inner.admin(action, keyId, now, reason);
    await this.voidLeases(keyId);
    return done;
  }

  /** This instance's leases go back first, so the numbers read are what it handed out. */
  async stats(now: number, options?: { keys: KeyRows }) {
    await this.giveBackAll();
    return this.inner.stats(now, options);
  }

  activitySeries(range: HistoryRange, now: number) {
    return this.inner.activitySeries(range, now);
  }

  async exportState(): Promise<PoolState> {
    await this.giveBackAll();
    return this.inner.exportState();
  }

  async replaceState(state: PoolState, now: number): Promise<void> {
    await this.giveBackAll();
    await this.inner.replaceState(state, now);
    await this.voidLeases();
  }
}
