/**
 * `WebhookReceiver` (DESIGN §4): an HTTP endpoint for git push webhooks, one route per source. Binds
 * 127.0.0.1 by default. Each route verifies its provider's signature in constant time (GitHub
 * `X-Hub-Signature-256`, Gitea `X-Gitea-Signature`: HMAC-SHA256 of the raw body; GitLab
 * `X-Gitlab-Token`), translates the payload with {@link WebhookEventBuilder} and hands the events to
 * the route's source — a non-static {@link ContextPageSource} you map into an engine.
 *
 * Answers: 202 accepted (or already accepted: a repeated delivery id is delivered once), 400 bad
 * JSON, 401 missing or wrong signature, 404 unknown route, 405 not POST, 413 body over the limit,
 * 503 route not being watched. Bad input never crashes it; the server does not keep the process alive.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { ValidationError } from '../shared/errors.js';
import type { PageChangeEvent } from '../shared/events.js';
import { parseInput } from '../shared/validation.js';
import { Broadcast } from './event-queue.js';
import { type ContextPageSource, NO_WATCH_CONTEXT, type WatchContext } from './source.js';
import { parseProvider, type WebhookProvider, WebhookEventBuilder } from './webhook-event-builder.js';

/** Options of {@link WebhookReceiver}. */
export interface WebhookReceiverOptions {
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default 0 (any free port; read `url` after `listen()`). */
  port?: number;
  /** Largest accepted body in bytes. Default 1 MiB. */
  bodyLimit?: number;
  /** Delivery ids remembered per route for de-duplication. Default 10 000. */
  deliveryMemory?: number;
}

/** Options of one route. */
export interface WebhookRouteOptions {
  provider: WebhookProvider | string;
  /** HMAC secret (GitHub, Gitea, generic) or token (GitLab). Without one, requests are not verified. */
  secret?: string;
  dataType?: string;
  /** Repository URL for payloads that carry none. */
  url?: string;
}

/** Defaults of {@link WebhookReceiverOptions}. */
export const WEBHOOK_DEFAULTS = Object.freeze({ host: '127.0.0.1', port: 0, bodyLimit: 1024 * 1024, deliveryMemory: 10_000 });

const ReceiverSchema = z
  .object({
    host: z.string().min(1).optional(),
    port: z.number().int().min(0).max(65_535).optional(),
    bodyLimit: z.number().int().positive().optional(),
    deliveryMemory: z.number().int().positive().optional(),
  })
  .strict();

const RouteSchema = z
  .object({ provider: z.string(), secret: z.string().min(1).optional(), dataType: z.string().min(1).optional(), url: z.string().min(1).optional() })
  .strict();

/** Push event names per provider header; other events (ping, issues…) are acknowledged and ignored. */
const PUSH_EVENTS: Record<string, string> = { 'x-github-event': 'push', 'x-gitea-event': 'push', 'x-gitlab-event': 'Push Hook' };
const DELIVERY_HEADERS = ['x-github-delivery', 'x-gitea-delivery', 'x-gitlab-event-uuid', 'x-gitlab-webhook-uuid', 'x-delivery-id', 'x-request-id'];

/** The source behind one route: map it into an engine to receive its pushes. */
export class WebhookSource implements ContextPageSource {
  readonly static = false;
  readonly path: string;
  readonly sourceId: string;
  /** @internal */ readonly provider: WebhookProvider;
  /** @internal */ readonly options: WebhookRouteOptions;
  readonly #broadcast = new Broadcast<PageChangeEvent>();
  readonly #seen = new Set<string>();
  readonly #memory: number;

  /** @internal Use {@link WebhookReceiver.route}. */
  constructor(path: string, provider: WebhookProvider, options: WebhookRouteOptions, memory: number) {
    this.path = path;
    this.provider = provider;
    this.options = options;
    this.sourceId = `webhook:${provider}:${path}`;
    this.#memory = memory;
  }

  /** True while some consumer iterates {@link watch}. */
  get watched(): boolean {
    return this.#broadcast.watched;
  }

  watch(signal: AbortSignal = new AbortController().signal, context: WatchContext = NO_WATCH_CONTEXT): AsyncGenerator<PageChangeEvent> {
    return this.#broadcast.watch(signal, context);
  }

  /** @internal First sighting of a delivery id → true (and remembered); a repeat → false. */
  remember(deliveryId: string): boolean {
    if (this.#seen.has(deliveryId)) return false;
    this.#seen.add(deliveryId);
    // Oldest first out: a Set iterates in insertion order.
    if (this.#seen.size > this.#memory) this.#seen.delete(this.#seen.values().next().value!);
    return true;
  }

  /** @internal Hands events to every consumer; resolves when they have room (backpressure). */
  deliver(events: PageChangeEvent[]): Promise<void> {
    return this.#broadcast.publish(events);
  }
}

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** Constant-time comparison of two strings (false on length mismatch, after an equal-time compare). */
function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  if (left.length !== right.length) {
    timingSafeEqual(left, left);
    return false;
  }
  return timingSafeEqual(left, right);
}

function verify(route: WebhookSource, headers: IncomingMessage['headers'], body: Buffer): boolean {
  const secret = route.options.secret;
  if (secret === undefined) return true;
  const header = (name: string): string | undefined => {
    const value = headers[name];
    return typeof value === 'string' ? value : undefined;
  };
  const hmac = (): string => createHmac('sha256', secret).update(body).digest('hex');
  switch (route.provider) {
    case 'gitlab': {
      const token = header('x-gitlab-token');
      return token !== undefined && safeEqual(token, secret);
    }
    case 'gitea': {
      const signature = header('x-gitea-signature') ?? header('x-hub-signature-256')?.replace(/^sha256=/, '');
      return signature !== undefined && safeEqual(signature.toLowerCase(), hmac());
    }
    case 'github':
    case 'generic': {
      const signature = header('x-hub-signature-256');
      return signature !== undefined && safeEqual(signature.toLowerCase(), `sha256=${hmac()}`);
    }
  }
}

/** Node's `http` server with webhook routes. */
export class WebhookReceiver {
  readonly #options: Required<WebhookReceiverOptions>;
  readonly #routes = new Map<string, WebhookSource>();
  #server: Server | undefined;
  #closed = false;

  constructor(options: WebhookReceiverOptions = {}) {
    this.#options = { ...WEBHOOK_DEFAULTS, ...parseInput(ReceiverSchema, options, 'options') } as Required<WebhookReceiverOptions>;
  }

  /** Adds a route (`/hooks/repo`); returns its source. A path can be routed once. */
  route(path: string, options: WebhookRouteOptions): WebhookSource {
    if (typeof path !== 'string' || !path.startsWith('/')) throw new ValidationError('path', 'must start with /');
    if (this.#routes.has(path)) throw new ValidationError('path', `${path} is already routed`);
    const input = parseInput(RouteSchema, options, 'options') as WebhookRouteOptions;
    const provider = parseProvider(input.provider, 'options.provider');
    const source = new WebhookSource(path, provider, input, this.#options.deliveryMemory);
    this.#routes.set(path, source);
    return source;
  }

  /** Starts listening; resolves with the base URL (`http://127.0.0.1:<port>`). */
  async listen(): Promise<string> {
    if (this.#closed) throw new ValidationError('receiver', 'is closed');
    if (this.#server !== undefined) return this.url;
    const server = createServer((req, res) => void this.#handle(req, res));
    // A malformed request line or header: answer 400 if the socket still can, never throw.
    server.on('clientError', (_error, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#options.port, this.#options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', () => undefined);
    server.unref();
    return this.url;
  }

  /** `http://host:port` once listening. */
  get url(): string {
    const address = this.#server?.address() as AddressInfo | null | undefined;
    if (address === undefined || address === null) throw new ValidationError('receiver', 'is not listening');
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `http://${host}:${address.port}`;
  }

  /** Stops listening and drops open connections. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    const server = this.#server;
    this.#server = undefined;
    if (server === undefined) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const path = (req.url ?? '/').split('?')[0]!;
      const route = this.#routes.get(path);
      if (route === undefined) throw new HttpError(404, 'no such webhook route');
      if (req.method !== 'POST') {
        res.setHeader('Allow', 'POST');
        throw new HttpError(405, 'use POST');
      }
      const body = await this.#readBody(req);
      if (!verify(route, req.headers, body)) throw new HttpError(401, 'missing or wrong signature');
      const payload = parseBody(req, body);
      const deliveryId = DELIVERY_HEADERS.map((h) => req.headers[h]).find((v): v is string => typeof v === 'string' && v.length > 0);
      for (const [header, push] of Object.entries(PUSH_EVENTS)) {
        const event = req.headers[header];
        if (typeof event === 'string' && event !== push) return reply(res, 202, { ignored: event });
      }
      if (!route.watched) throw new HttpError(503, 'this route is not being watched (map its source into an engine)');
      const events = WebhookEventBuilder.fromPayload(route.provider, payload, {
        ...(route.options.dataType === undefined ? {} : { dataType: route.options.dataType }),
        ...(route.options.url === undefined ? {} : { url: route.options.url }),
      });
      if (deliveryId !== undefined && !route.remember(deliveryId)) return reply(res, 202, { duplicate: deliveryId, events: 0 });
      await route.deliver(events);
      reply(res, 202, { events: events.length });
    } catch (error) {
      if (error instanceof HttpError) reply(res, error.status, { error: error.message });
      else if (error instanceof ValidationError) reply(res, 400, { error: error.message });
      else reply(res, 500, { error: 'internal error' });
    }
  }

  #readBody(req: IncomingMessage): Promise<Buffer> {
    const limit = this.#options.bodyLimit;
    const declared = Number(req.headers['content-length']);
    return new Promise((resolve, reject) => {
      if (Number.isFinite(declared) && declared > limit) {
        req.resume();
        reject(new HttpError(413, `body over ${limit} bytes`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > limit) {
          chunks.length = 0;
          req.pause();
          reject(new HttpError(413, `body over ${limit} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', (error) => reject(new HttpError(400, error.message)));
    });
  }
}

function parseBody(req: IncomingMessage, body: Buffer): unknown {
  let text = body.toString('utf8');
  // GitHub can send `application/x-www-form-urlencoded` with the JSON in a `payload` field.
  if ((req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) text = new URLSearchParams(text).get('payload') ?? '';
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, 'body is not valid JSON');
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...(status === 413 ? { connection: 'close' } : {}) });
  res.end(text);
}
