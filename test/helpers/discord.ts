/**
 * A small Discord emulator on 127.0.0.1 for end-to-end tests of the real discord.js client:
 * REST under /api/v10 (gateway discovery, command registration, messages, interaction callbacks)
 * and a WebSocket gateway (HELLO, IDENTIFY, heartbeat ACK, READY, GUILD_CREATE, then
 * MESSAGE_CREATE and INTERACTION_CREATE on demand). It records what the bot sends.
 */
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type {
  APIEmbed,
  GatewayIdentifyData,
  GatewayPresenceUpdateData,
  RESTPostAPIApplicationCommandsJSONBody,
} from 'discord.js';
import { WebSocketServer, type WebSocket } from 'ws';

/** A message or interaction answer the bot sent, as the tests read it: its answers are embeds. */
export interface SentBody {
  content?: string;
  embeds: APIEmbed[];
  message_reference?: unknown;
  /** Interaction callbacks: the answer's type (4: a message), and the message in `data`. */
  type?: number;
  data?: { embeds: APIEmbed[] };
}

/** A slash command as the bot registered it, with the id the emulator gave it. */
export type RegisteredCommand = RESTPostAPIApplicationCommandsJSONBody & { id: string };

export const APP_ID = '900000000000000001';
export const BOT_USER_ID = APP_ID;
export const GUILD_ID = '900000000000000010';
export const TEXT_CHANNEL_ID = '900000000000000020';
export const ALERT_CHANNEL_ID = '900000000000000021';
export const HUMAN_ID = '900000000000000030';

export interface RecordedMessage {
  channelId: string;
  body: SentBody;
}

export interface RecordedInteractionResponse {
  interactionId: string;
  token: string;
  body: SentBody;
}

let snowflakeSeq = 0n;
function snowflake(): string {
  // Discord epoch-based ids; uniqueness is all the tests need.
  return ((BigInt(Date.now() - 1420070400000) << 22n) + ++snowflakeSeq).toString();
}

const human = {
  id: HUMAN_ID,
  username: 'gardener',
  discriminator: '0',
  global_name: 'Gardener',
  avatar: null,
  bot: false,
};

export class DiscordEmulator extends EventEmitter {
  readonly presences: GatewayPresenceUpdateData[] = [];
  readonly messages: RecordedMessage[] = [];
  readonly interactionResponses: RecordedInteractionResponse[] = [];
  readonly commands: RegisteredCommand[] = [];
  identifies: Array<Pick<GatewayIdentifyData, 'intents' | 'presence'>> = [];
  private server: Server | null = null;
  private wss: WebSocketServer | null = null;
  private sockets = new Set<WebSocket>();
  private seq = 0;
  port = 0;

  constructor(readonly token: string) {
    super();
  }

  /** Base URL to give the bot as DISCORD_API_URL. */
  get apiUrl(): string {
    return `http://127.0.0.1:${this.port}/api`;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.onHttp(req, res));
    this.wss = new WebSocketServer({ server: this.server, path: '/gateway' });
    this.wss.on('connection', (ws) => this.onSocket(ws));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const addr = this.server.address();
    this.port = typeof addr === 'object' && addr ? addr.port : 0;
  }

  async stop(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    this.wss?.close();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  // ---------------------------------------------------------------- REST

  private async onHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown = null;
    if (text) {
      // discord.js sends JSON, or multipart with a payload_json part when files are attached.
      const m = /name="payload_json"\r\n(?:Content-Type: application\/json\r\n)?\r\n([\s\S]*?)\r\n--/u.exec(text);
      body = JSON.parse(m ? m[1]! : text);
    }
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname.replace(/^\/api\/v10/u, '');
    const send = (status: number, payload?: unknown) => {
      res.writeHead(status, payload === undefined ? {} : { 'content-type': 'application/json' });
      res.end(payload === undefined ? undefined : JSON.stringify(payload));
    };
    const isInteractionCallback = /^\/interactions\/\d+\/[^/]+\/callback$/u.test(path);
    if (!isInteractionCallback && req.headers.authorization !== `Bot ${this.token}`) {
      send(401, { message: '401: Unauthorized', code: 0 });
      return;
    }
    let m: RegExpExecArray | null;
    if (req.method === 'GET' && path === '/gateway/bot') {
      send(200, {
        url: `ws://127.0.0.1:${this.port}/gateway`,
        shards: 1,
        session_start_limit: { total: 1000, remaining: 999, reset_after: 0, max_concurrency: 1 },
      });
    } else if (req.method === 'PUT' && (m = /^\/applications\/(\d+)\/(?:guilds\/\d+\/)?commands$/u.exec(path))) {
      const registered = (body as RESTPostAPIApplicationCommandsJSONBody[]).map((c) => ({
        id: snowflake(),
        application_id: m![1],
        version: '1',
        default_member_permissions: null,
        type: 1,
        ...c,
      }));
      this.commands.splice(0, this.commands.length, ...registered);
      this.emit('commands', registered);
      send(200, registered);
    } else if (req.method === 'POST' && (m = /^\/channels\/(\d+)\/messages$/u.exec(path))) {
      const sent = body as SentBody;
      const message = this.messageObject(m[1]!, {
        ...sent,
        author: { id: BOT_USER_ID, username: 'keywarden', discriminator: '0', bot: true, avatar: null },
      });
      this.messages.push({ channelId: m[1]!, body: sent });
      this.emit('message', { channelId: m[1]!, body: sent });
      send(200, message);
    } else if (req.method === 'POST' && (m = /^\/interactions\/(\d+)\/([^/]+)\/callback$/u.exec(path))) {
      const r = { interactionId: m[1]!, token: m[2]!, body: body as SentBody };
      this.interactionResponses.push(r);
      this.emit('interactionResponse', r);
      send(204);
    } else if (req.method === 'PATCH' && (m = /^\/webhooks\/(\d+)\/([^/]+)\/messages\/@original$/u.exec(path))) {
      const r = { interactionId: 'followup', token: m[2]!, body: body as SentBody };
      this.interactionResponses.push(r);
      this.emit('interactionResponse', r);
      send(200, this.messageObject(TEXT_CHANNEL_ID, r.body));
    } else {
      send(404, { message: `404: Not Found (${req.method} ${path})`, code: 0 });
    }
  }

  private messageObject(channelId: string, body: { content?: string; embeds?: APIEmbed[]; author?: object }) {
    return {
      id: snowflake(),
      channel_id: channelId,
      guild_id: GUILD_ID,
      author: body.author ?? { id: BOT_USER_ID, username: 'keywarden', discriminator: '0', bot: true, avatar: null },
      content: body.content ?? '',
      embeds: body.embeds ?? [],
      attachments: [],
      mentions: [],
      mention_roles: [],
      mention_everyone: false,
      pinned: false,
      tts: false,
      type: 0,
      timestamp: new Date().toISOString(),
      edited_timestamp: null,
      flags: 0,
      components: [],
    };
  }

  // ---------------------------------------------------------------- gateway

  private onSocket(ws: WebSocket): void {
    this.sockets.add(ws);
    ws.on('close', () => this.sockets.delete(ws));
    ws.send(JSON.stringify({ op: 10, d: { heartbeat_interval: 41_250 }, s: null, t: null }));
    ws.on('message', (raw) => {
      const msg = JSON.parse(raw.toString()) as { op: number; d: unknown };
      switch (msg.op) {
        case 1:
          ws.send(JSON.stringify({ op: 11, d: null, s: null, t: null }));
          break;
        case 2: {
          const identify = msg.d as GatewayIdentifyData;
          if (identify.token !== this.token) {
            ws.close(4004, 'Authentication failed.');
            return;
          }
          this.identifies.push({ intents: identify.intents, presence: identify.presence });
          if (identify.presence) this.recordPresence(identify.presence);
          this.dispatch(ws, 'READY', {
            v: 10,
            user: {
              id: BOT_USER_ID,
              username: 'keywarden',
              discriminator: '0',
              bot: true,
              avatar: null,
              global_name: null,
              flags: 0,
            },
            guilds: [{ id: GUILD_ID, unavailable: true }],
            session_id: 'session-1',
            resume_gateway_url: `ws://127.0.0.1:${this.port}/gateway`,
            shard: [0, 1],
            application: { id: APP_ID, flags: 0 },
          });
          this.dispatch(ws, 'GUILD_CREATE', this.guild());
          break;
        }
        case 3:
          this.recordPresence(msg.d as GatewayPresenceUpdateData);
          break;
        default:
          break;
      }
    });
  }

  private recordPresence(p: GatewayPresenceUpdateData): void {
    this.presences.push(p);
    this.emit('presence', p);
  }

  private guild() {
    const channel = (id: string, name: string) => ({
      id,
      type: 0,
      name,
      guild_id: GUILD_ID,
      position: 0,
      permission_overwrites: [],
      nsfw: false,
      parent_id: null,
    });
    return {
      id: GUILD_ID,
      name: 'Garden',
      icon: null,
      owner_id: HUMAN_ID,
      unavailable: false,
      member_count: 2,
      large: false,
      joined_at: new Date().toISOString(),
      roles: [
        {
          id: GUILD_ID,
          name: '@everyone',
          permissions: '68608',
          position: 0,
          color: 0,
          hoist: false,
          managed: false,
          mentionable: false,
          flags: 0,
        },
      ],
      channels: [channel(TEXT_CHANNEL_ID, 'general'), channel(ALERT_CHANNEL_ID, 'alerts')],
      threads: [],
      members: [],
      presences: [],
      voice_states: [],
      emojis: [],
      stickers: [],
      features: [],
      guild_scheduled_events: [],
      stage_instances: [],
      soundboard_sounds: [],
      premium_tier: 0,
      preferred_locale: 'en-US',
      verification_level: 0,
      default_message_notifications: 0,
      explicit_content_filter: 0,
      mfa_level: 0,
      system_channel_flags: 0,
      nsfw_level: 0,
      afk_timeout: 300,
    };
  }

  private dispatch(ws: WebSocket, t: string, d: unknown): void {
    ws.send(JSON.stringify({ op: 0, t, s: ++this.seq, d }));
  }

  private broadcast(t: string, d: unknown): void {
    for (const ws of this.sockets) this.dispatch(ws, t, d);
  }

  /** Resolves once the bot has identified. */
  get connected(): boolean {
    return this.identifies.length > 0 && this.sockets.size > 0;
  }

  /** A human posts `content` in #general. */
  userMessage(content: string, channelId = TEXT_CHANNEL_ID): string {
    const id = snowflake();
    this.broadcast('MESSAGE_CREATE', {
      ...this.messageObject(channelId, { content, author: human }),
      id,
      member: { roles: [], joined_at: new Date().toISOString(), deaf: false, mute: false, flags: 0 },
    });
    return id;
  }

  /** A human runs the slash command `name` in #general. */
  slashCommand(name: string): { id: string; token: string } {
    const id = snowflake();
    const token = `interaction-token-${id}`;
    const command = this.commands.find((c) => c.name === name);
    this.broadcast('INTERACTION_CREATE', {
      id,
      application_id: APP_ID,
      type: 2,
      token,
      version: 1,
      guild_id: GUILD_ID,
      channel_id: TEXT_CHANNEL_ID,
      channel: { id: TEXT_CHANNEL_ID, type: 0, name: 'general', guild_id: GUILD_ID },
      member: {
        user: human,
        roles: [],
        permissions: '2147483647',
        joined_at: new Date().toISOString(),
        deaf: false,
        mute: false,
        flags: 0,
      },
      data: { id: command?.id ?? snowflake(), name, type: 1 },
      locale: 'en-US',
      guild_locale: 'en-US',
      app_permissions: '2147483647',
      entitlements: [],
      authorizing_integration_owners: { '0': GUILD_ID },
      context: 0,
      attachment_size_limit: 10_485_760,
    });
    return { id, token };
  }

  /** Waits for the first recorded item (already there or arriving) that matches. */
  waitFor<T>(
    event: 'presence' | 'message' | 'interactionResponse' | 'commands',
    list: T[],
    match: (x: T) => boolean,
    timeoutMs = 10_000,
  ): Promise<T> {
    const found = list.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off(event, onEvent);
        reject(
          new Error(
            `emulator: no matching ${event} within ${timeoutMs} ms; got ${JSON.stringify(list).slice(0, 2000)}`,
          ),
        );
      }, timeoutMs);
      const onEvent = (x: T) => {
        if (!match(x)) return;
        clearTimeout(timer);
        this.off(event, onEvent);
        resolve(x);
      };
      this.on(event, onEvent);
    });
  }
}
