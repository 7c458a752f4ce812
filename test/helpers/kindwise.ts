/**
 * A fake Kindwise upstream (plant.id v3, crop.health v1) for the upstream-sync and proxy tests:
 * a real HTTP server on 127.0.0.1 that keeps per-key credits with day, week, month and total
 * limits, answers usage_info (free), identification and health_assessment (spending credits)
 * like Kindwise does, can be told to fail (503, hang, reset), and records every request it got.
 *
 * As Kindwise: the key comes in the `Api-Key` header; an unknown or inactive key is 401 with a
 * sentence; out of credits, a credit-spending call is 429 with a sentence naming the limit. An
 * identification spends 1 credit, 1 more when it asks for a health assessment (`health` in the
 * body or query: `health: "all"` spends 2); a health_assessment call spends 1; usage_info and
 * everything that names an identification (retrieve, delete, feedback, conversation) spend
 * nothing and work only with the key that made it (404 "Identification not found." for any other).
 * Windows are UTC: days from midnight, weeks from Monday, months from the 1st.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type CreditWindow = 'day' | 'week' | 'month' | 'total';
export const CREDIT_WINDOWS: readonly CreditWindow[] = ['day', 'week', 'month', 'total'];
type PerWindow = Record<CreditWindow, number | null>;

interface FakeKey {
  active: boolean;
  limits: PerWindow;
  /** Credits spent, per window, in the window that started at `starts[window]`. */
  used: Record<CreditWindow, number>;
  starts: Record<CreditWindow, number>;
}

export interface ReceivedRequest {
  method: string;
  /** Path without the query. */
  path: string;
  query: string;
  /** The Api-Key header as received (the fake sees real keys: that is what it is for). */
  apiKey: string | null;
  authorization: string | null;
  /** Every header as received (lower-case names). */
  headers: IncomingMessage['headers'];
  bodyBytes: number;
  at: number;
}

type Conversation = Array<{ question: string; answer: string; at: string }>;

export type FailureMode = 'none' | '500' | '503' | 'hang' | 'reset';

const DAY_MS = 86_400_000;

/** Start of the UTC window of `kind` that holds `now` (total: 0). */
export function windowStart(kind: CreditWindow, now: number): number {
  const d = new Date(now);
  switch (kind) {
    case 'day':
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
    case 'week': {
      const day = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
      return day - ((d.getUTCDay() + 6) % 7) * DAY_MS; // Monday
    }
    case 'month':
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    case 'total':
      return 0;
  }
}

export class FakeKindwise {
  readonly requests: ReceivedRequest[] = [];
  /** Requests whose head arrived, their body read or not (`requests` lists those read whole). */
  arrived = 0;
  /** Requests left unanswered ('hang') whose connection the caller closed. */
  closedWhileHanging = 0;
  private readonly keys = new Map<string, FakeKey>();
  private readonly identifications = new Map<
    string,
    {
      apiKey: string;
      customId: string | null;
      result: Record<string, unknown>;
      feedback: unknown;
      conversation: Conversation | null;
    }
  >();
  /** Paths answered as set by `answer()`, whatever the key. */
  private readonly fixed = new Map<
    string,
    (apiKey: string) => { status: number; body: string | Buffer; headers?: Record<string, string | string[]> }
  >();
  /** Credits each key was charged, summed (what the served counts must equal). */
  charged = 0;
  /** Credits charged by the caller's `x-test-app` header ('' without one): what each app spent. */
  readonly chargedBy = new Map<string, number>();
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private failure: { mode: FailureMode; remaining: number } = { mode: 'none', remaining: 0 };
  url = '';

  constructor(private readonly clock: () => number = Date.now) {}

  /** Adds a key; limits default to none (null), usage to zero. */
  addKey(
    key: string,
    opts: { active?: boolean; limits?: Partial<PerWindow>; used?: Partial<Record<CreditWindow, number>> } = {},
  ): void {
    const now = this.clock();
    const starts = Object.fromEntries(CREDIT_WINDOWS.map((w) => [w, windowStart(w, now)])) as Record<
      CreditWindow,
      number
    >;
    this.keys.set(key, {
      active: opts.active ?? true,
      limits: { day: null, week: null, month: null, total: null, ...opts.limits },
      used: { day: 0, week: 0, month: 0, total: 0, ...opts.used },
      starts,
    });
  }

  setActive(key: string, active: boolean): void {
    this.key(key).active = active;
  }

  /** Sets the credits spent in the current `window` (and in no other). */
  setUsed(key: string, window: CreditWindow, used: number): void {
    const k = this.roll(this.key(key));
    k.used[window] = used;
  }

  /** Answers `path` (any method, any key, even none) with what `fn` gives for the Api-Key sent. */
  answer(
    path: string,
    fn: (apiKey: string) => { status: number; body: string | Buffer; headers?: Record<string, string | string[]> },
  ): void {
    this.fixed.set(path, fn);
  }

  /** Makes an identification with `key` directly, as an app did before Keywarden: its access_token. */
  identifyDirectly(key: string): string {
    const token = randomBytes(8).toString('hex');
    this.identifications.set(token, {
      apiKey: key,
      customId: null,
      result: { access_token: token, status: 'COMPLETED' },
      feedback: null,
      conversation: null,
    });
    return token;
  }

  /** The next `times` requests (all, when omitted) fail as `mode`: 500, 503, never answered, or connection reset. */
  fail(mode: FailureMode, times = Number.POSITIVE_INFINITY): void {
    this.failure = { mode, remaining: mode === 'none' ? 0 : times };
  }

  /** Requests that reached the fake for `path` (any method), e.g. '/api/v3/usage_info'. */
  received(path: string): ReceivedRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  /** Credits left in each window, null where unlimited. */
  remaining(key: string): PerWindow {
    const k = this.roll(this.key(key));
    return Object.fromEntries(
      CREDIT_WINDOWS.map((w) => [w, k.limits[w] === null ? null : Math.max(0, k.limits[w]! - k.used[w])]),
    ) as PerWindow;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = null;
  }

  private key(key: string): FakeKey {
    const k = this.keys.get(key);
    if (!k) throw new Error('FakeKindwise: no such key');
    return k;
  }

  /** Starts windows over that have ended (the clock moved on). */
  private roll(k: FakeKey): FakeKey {
    const now = this.clock();
    for (const w of CREDIT_WINDOWS) {
      const start = windowStart(w, now);
      if (start !== k.starts[w]) {
        k.starts[w] = start;
        k.used[w] = 0;
      }
    }
    return k;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.arrived++;
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const [path = '', query = ''] = (req.url ?? '').split('?');
    this.requests.push({
      method: req.method ?? '',
      path,
      query,
      apiKey: req.headers['api-key'] === undefined ? null : String(req.headers['api-key']),
      authorization: req.headers.authorization ?? null,
      headers: req.headers,
      bodyBytes: body.length,
      at: this.clock(),
    });
    if (this.failure.remaining > 0) {
      this.failure.remaining--;
      if (this.failure.mode === 'hang') {
        res.once('close', () => this.closedWhileHanging++); // never answered: the caller's timeout (or its going away) ends it
        return;
      }
      if (this.failure.mode === 'reset') {
        req.socket.destroy();
        return;
      }
      if (this.failure.mode === '500') return send(res, 500, { detail: 'Internal server error.' });
      return send(res, 503, { detail: 'Service temporarily unavailable.' });
    }
    const apiKey = req.headers['api-key'] === undefined ? null : String(req.headers['api-key']);
    const fixed = this.fixed.get(path);
    if (fixed) {
      const a = fixed(apiKey ?? '');
      res.writeHead(a.status, { 'Content-Type': 'application/json', ...a.headers });
      res.end(a.body);
      return;
    }
    const k = apiKey === null ? undefined : this.keys.get(apiKey);
    const version = /^\/api\/(v1|v3)\//u.exec(path)?.[1];
    if (!version) return send(res, 404, { detail: 'Not found.' });
    if (!k) return send(res, 401, 'The specified api key not found.');
    if (!k.active) return send(res, 401, 'The specified api key is not active.');
    this.roll(k);
    const route = path.slice(`/api/${version}`.length);

    if (req.method === 'GET' && route === '/usage_info') return send(res, 200, this.usageInfo(k));
    let parsed: Record<string, unknown> = {};
    try {
      parsed = JSON.parse(body.toString('utf8') || '{}') as typeof parsed;
    } catch {
      return send(res, 400, 'Invalid JSON.');
    }
    // Everything that names an identification: free, and only for the key that made it.
    const named = /^\/identification\/([^/]+)(\/.*)?$/u.exec(route);
    if (named) {
      const ref = decodeURIComponent(named[1]!);
      const entry = [...this.identifications].find(
        ([token, v]) => v.apiKey === apiKey && (token === ref || v.customId === ref),
      );
      if (!entry) return send(res, 404, 'Identification not found.');
      const [token, found] = entry;
      const sub = named[2] ?? '';
      const m = req.method;
      if (sub === '' && m === 'GET') return send(res, 200, found.result);
      if (sub === '' && m === 'DELETE') {
        this.identifications.delete(token);
        return send(res, 200, true);
      }
      if (sub === '/feedback' && m === 'POST') {
        found.feedback = parsed;
        return send(res, 200, true);
      }
      if (sub === '/conversation' && m === 'POST') {
        found.conversation ??= [];
        found.conversation.push({
          question: String(parsed.question ?? ''),
          answer: 'It is a plant.',
          at: new Date(this.clock()).toISOString(),
        });
        return send(res, 200, this.conversationOf(token, found.conversation));
      }
      if (sub === '/conversation' && m === 'GET') {
        if (found.conversation === null) return send(res, 404, 'Conversation not found.');
        return send(res, 200, this.conversationOf(token, found.conversation));
      }
      if (sub === '/conversation' && m === 'DELETE') {
        found.conversation = null;
        return send(res, 200, true);
      }
      if (sub === '/conversation/feedback' && m === 'POST') return send(res, 200, true);
      return send(res, 404, { detail: 'Not found.' });
    }
    if (req.method === 'POST' && (route === '/identification' || route === '/health_assessment')) {
      const images = parsed.images;
      if (!Array.isArray(images) || images.length === 0) return send(res, 400, 'Invalid image data.');
      // As plant.id: an identification that also asks for the full health assessment spends 2.
      const healthAll = parsed.health === 'all' || /(?:^|&)health=all(?:&|$)/u.test(query);
      const cost = route === '/identification' && healthAll ? 2 : 1;
      const out = this.outOfCredits(k, cost);
      if (out) return send(res, 429, out);
      for (const w of CREDIT_WINDOWS) k.used[w] += cost;
      this.charged += cost;
      const by = String(req.headers['x-test-app'] ?? '');
      this.chargedBy.set(by, (this.chargedBy.get(by) ?? 0) + cost);
      const token = randomBytes(8).toString('hex');
      const customId =
        typeof parsed.custom_id === 'number' || typeof parsed.custom_id === 'string' ? String(parsed.custom_id) : null;
      const result = {
        access_token: token,
        model_version: 'fake_1.0',
        custom_id: customId === null ? null : Number(customId),
        status: 'COMPLETED',
        input: { images },
        result: { is_plant: { probability: 0.99, binary: true } },
      };
      // A custom id names the newest identification that carries it (the client's integer).
      for (const [t, v] of this.identifications)
        if (customId !== null && v.apiKey === apiKey && v.customId === customId) this.identifications.delete(t);
      this.identifications.set(token, { apiKey: apiKey!, customId, result, feedback: null, conversation: null });
      return send(res, 201, result);
    }
    if (req.method === 'GET' && /^\/kb\/[^/]+\/name_search$/u.test(route))
      return send(res, 200, { entities: [], entities_trimmed: false, limit: 10 });
    return send(res, 404, { detail: 'Not found.' });
  }

  /** A conversation as Kindwise answers it (the SDK's Conversation.from_dict reads every field). */
  private conversationOf(token: string, c: Conversation): unknown {
    const messages = c.flatMap((q) => [
      { content: q.question, type: 'question', created: q.at },
      { content: q.answer, type: 'answer', created: q.at },
    ]);
    return { messages, identification: token, remaining_calls: 5, model_parameters: { model: 'fake' }, feedback: {} };
  }

  /** The sentence a credit-spending call gets when `cost` credits do not fit, or null. */
  private outOfCredits(k: FakeKey, cost: number): string | null {
    for (const w of ['day', 'week', 'month'] as const) {
      const limit = k.limits[w];
      if (limit !== null && k.used[w] + cost > limit) return `Your api key reached its ${w} credit limit (${limit}).`;
    }
    const total = k.limits.total;
    if (total !== null && k.used.total + cost > total)
      return 'Your api key does not have sufficient number of available credits.';
    return null;
  }

  private usageInfo(k: FakeKey): unknown {
    const remaining = Object.fromEntries(
      CREDIT_WINDOWS.map((w) => [w, k.limits[w] === null ? null : Math.max(0, k.limits[w]! - k.used[w])]),
    );
    const out = this.outOfCredits(k, 1);
    return {
      active: k.active,
      credit_limits: { ...k.limits },
      used: { ...k.used },
      remaining,
      can_use_credits: { value: out === null, reason: out },
    };
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
