/**
 * `converge serve`: an engine behind HTTP.
 *
 *   GET  /          the dashboard (counters, episode timeline, live feed)
 *   GET  /status    engine status and recent episodes, JSON
 *   GET  /metrics   Prometheus text format (prom-client)
 *   GET  /feed      server-sent events: `change` per change-feed entry, `quiescence` per episode,
 *                   `gap` when more changes came in between two reads than one read returns
 *   POST /events    page-change events (JSON: one event or an array), signed with the shared secret:
 *                   header `x-converge-signature: sha256=<hex HMAC-SHA256 of the body>`
 *   POST /webhooks/<github|gitlab|gitea|generic>   git push webhooks, verified with the same secret
 *                   (the WebhookReceiver, on a loopback port behind this server), mapped into the engine
 *
 * Listens on 127.0.0.1 unless told otherwise. Without --secret, POST is refused.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { type ChangeFeedEntry, type EngineCounters, type QuiescenceReport, zeroCounters } from '../../shared/protocol.js';
import type { PageChangeEvent } from '../../shared/events.js';
import { WEBHOOK_PROVIDERS } from '../../watchers/webhook-event-builder.js';
import { WEBHOOK_DEFAULTS, WebhookReceiver } from '../../watchers/webhook-receiver.js';
import { createEngine, type Engine, type EngineStatus } from '../engine.js';
import { integer, UsageError, valueFlag } from './args.js';
import { CliError, type CliContext, defineCommand, untilAborted } from './context.js';
import { DASHBOARD_HTML } from './dashboard.js';

/** Most request body accepted by POST /events. */
const MAX_BODY_BYTES = 8 * 1024 * 1024;
/** Episodes kept for /status and the timeline. */
const EPISODES_KEPT = 100;
/** How often the feed is polled while someone listens. */
const FEED_POLL_MS = 200;

/** A host name or IP address to listen on. */
function host(text: string, flag: string): string {
  if (isIP(text) !== 0 || /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i.test(text)) return text;
  throw new UsageError(`${flag} must be an IP address or host name, got ${JSON.stringify(text)}`);
}

/** The shared secret for signed requests: at least 16 characters. */
function secret(text: string, flag: string): string {
  if (text.length < 16) throw new UsageError(`${flag} must be at least 16 characters (e.g. the output of \`openssl rand -hex 16\`)`);
  return text;
}

/** Signs `body` the way POST /events expects: `sha256=<hex>`. */
export function signBody(body: string | Buffer, key: string): string {
  return `sha256=${createHmac('sha256', key).update(body).digest('hex')}`;
}

function verify(body: Buffer, key: string, header: string | string[] | undefined): boolean {
  if (typeof header !== 'string') return false;
  const expected = Buffer.from(signBody(body, key));
  const given = Buffer.from(header);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** The metrics registry, read from the engine's status at each scrape. */
function metricsFor(engine: Engine): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'converge_' });
  let snapshot: Promise<EngineStatus> | undefined;
  // One status query per scrape, shared by every metric.
  const status = (): Promise<EngineStatus> => (snapshot ??= engine.getStatus().finally(() => setImmediate(() => (snapshot = undefined))));
  // Every engine counter, named after its key (dispatchesDamped → converge_dispatches_damped_total).
  const counters = Object.keys(zeroCounters()) as (keyof EngineCounters)[];
  const HELP: Partial<Record<keyof EngineCounters, string>> = {
    eventsReceived: 'Page-change events the convergence worker took from the ingest ring.',
    dispatchesAttempted: 'Event-subscription matches considered for dispatch.',
    dispatchesEmitted: 'Dispatches sent to handlers or pool tasks.',
    dispatchesDamped: 'Matches skipped because the numeric change was within tolerance.',
    dispatchesRateLimited: 'Matches never delivered because of the per-page rate limiter.',
    dispatchesDeferred: 'Matches held back by the rate limiter for a trailing delivery.',
    dispatchesFailed: 'Dispatches whose handler or task failed.',
  };
  for (const key of counters) {
    new Counter({
      name: `converge_${key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}_total`,
      help: HELP[key] ?? `The engine counter ${key} (see the README).`,
      registers: [registry],
      async collect() {
        this.reset();
        this.inc(Number((await status()).counters[key] ?? 0));
      },
    });
  }
  const gauges: [string, (s: EngineStatus) => number, string][] = [
    ['converge_subscriptions', (s) => s.subscriptions, 'Active subscriptions.'],
    ['converge_dispatches_in_flight', (s) => s.inFlight, 'Dispatches sent and not yet acknowledged.'],
    ['converge_deliveries_deferred', (s) => s.deferred, 'Rate-limited deliveries waiting for their page bucket.'],
    ['converge_handlers_running', (s) => s.handlersRunning, 'Main-thread handlers currently running.'],
    ['converge_converging', (s) => (s.state === 'converging' ? 1 : 0), '1 while an episode is converging.'],
  ];
  for (const [name, read, help] of gauges) {
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        this.set(read(await status()));
      },
    });
  }
  return registry;
}

/** Change-feed entries and quiescence reports, pushed to every /feed listener. */
class FeedHub {
  readonly #engine: Engine;
  readonly #clients = new Set<ServerResponse>();
  /** The last change-feed seq sent (seqs start at 1). */
  #lastSeq = 0;
  #timer: NodeJS.Timeout | undefined;
  #polling = false;

  constructor(engine: Engine) {
    this.#engine = engine;
  }

  /** Starts from the current end of the feed, so listeners get what happens from now on. */
  async start(): Promise<void> {
    const tail = await this.#engine.getChangeFeed({ limit: 1 });
    this.#lastSeq = tail.at(-1)?.seq ?? 0;
  }

  add(response: ServerResponse): void {
    this.#clients.add(response);
    response.on('close', () => {
      this.#clients.delete(response);
      if (this.#clients.size === 0) this.#stop();
    });
    this.#timer ??= setInterval(() => void this.#poll(), FEED_POLL_MS);
  }

  send(event: string, data: unknown): void {
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const client of this.#clients) client.write(frame);
  }

  async #poll(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      const entries: ChangeFeedEntry[] = await this.#engine.getChangeFeed({ limit: 1000 });
      // More changes than one read returns came in since the last poll: say how many were skipped.
      const first = entries.find((entry) => entry.seq > this.#lastSeq);
      if (first !== undefined && first.seq > this.#lastSeq + 1) this.send('gap', { missed: first.seq - this.#lastSeq - 1, from: this.#lastSeq + 1, to: first.seq - 1 });
      for (const entry of entries) {
        if (entry.seq <= this.#lastSeq) continue;
        this.#lastSeq = entry.seq;
        this.send('change', entry);
      }
    } catch {
      // The engine is closing: the server closes with it.
    } finally {
      this.#polling = false;
    }
  }

  #stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  close(): void {
    this.#stop();
    for (const client of this.#clients) client.end();
  }
}

function json(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  response.end(`${JSON.stringify(body, null, 2)}\n`);
}

/** An oversize body is read to its end (for the client to see the 413) up to this many times the limit; past it the connection is cut. */
const DRAIN_FACTOR = 16;

/**
 * The request's body, or null when it is larger than `limit` bytes. An oversize body is drained to
 * its end, not cut off mid-upload, so that the client reads the 413 instead of a reset connection
 * (up to {@link DRAIN_FACTOR} times the limit).
 */
function readBody(request: IncomingMessage, limit: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
      else {
        chunks.length = 0;
        if (size > limit * DRAIN_FACTOR) {
          request.destroy();
          resolve(null);
        }
      }
    });
    request.on('end', () => resolve(size > limit ? null : Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

/** A 413 that closes the connection (the rest of an oversize body is not worth reading). */
function tooLarge(response: ServerResponse, limit: number): void {
  response.setHeader('connection', 'close');
  json(response, 413, { error: `body larger than ${limit} bytes` });
}

/** Options of {@link startServer}. */
export interface ServeOptions {
  readonly port: number;
  readonly host: string;
  readonly secret?: string | undefined;
}

/** A running `converge serve`. */
export interface RunningServer {
  readonly url: string;
  readonly engine: Engine;
  close(): Promise<void>;
}

/** Starts an engine and the HTTP server in front of it. */
export async function startServer(options: ServeOptions, version: string): Promise<RunningServer> {
  const engine = await createEngine();
  const episodes: (QuiescenceReport & { at: number })[] = [];
  const hub = new FeedHub(engine);
  await hub.start();
  engine.on('quiescence', (report) => {
    episodes.push({ ...report, at: Date.now() });
    if (episodes.length > EPISODES_KEPT) episodes.shift();
    hub.send('quiescence', report);
  });
  const registry = metricsFor(engine);
  const started = Date.now();
  // Git push webhooks: one WebhookReceiver route per provider, its sources mapped into the engine.
  let receiver: WebhookReceiver | undefined;
  if (options.secret !== undefined) {
    receiver = new WebhookReceiver({ host: '127.0.0.1', port: 0 });
    for (const provider of WEBHOOK_PROVIDERS) await engine.mapSource(receiver.route(`/webhooks/${provider}`, { provider, secret: options.secret }));
    await receiver.listen();
  }

  /**
   * Hands a webhook request to the receiver and its answer back, unchanged. The body is read here
   * first, within the receiver's limit: an oversize one is answered 413 at once (piped through, the
   * receiver's early 413 raced the upload and the client got a 502 or a reset).
   */
  const forward = async (request: IncomingMessage, response: ServerResponse, base: string): Promise<void> => {
    const body = await readBody(request, WEBHOOK_DEFAULTS.bodyLimit);
    if (body === null) return tooLarge(response, WEBHOOK_DEFAULTS.bodyLimit);
    const headers = { ...request.headers, 'content-length': String(body.length) };
    delete headers['transfer-encoding'];
    const upstream = httpRequest(`${base}${request.url ?? '/'}`, { method: request.method, headers }, (answer) => {
      response.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(response);
    });
    upstream.on('error', (error) => {
      if (!response.headersSent) json(response, 502, { error: `webhook receiver: ${error.message}` });
      else response.end();
    });
    upstream.end(body);
  };

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    if (request.method === 'GET' && (path === '/' || path === '/index.html')) {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      response.end(DASHBOARD_HTML);
    } else if (request.method === 'GET' && path === '/status') {
      json(response, 200, { version, uptimeMs: Date.now() - started, acceptsEvents: options.secret !== undefined, status: await engine.getStatus(), episodes });
    } else if (request.method === 'GET' && path === '/metrics') {
      const text = await registry.metrics();
      response.writeHead(200, { 'content-type': registry.contentType });
      response.end(text);
    } else if (request.method === 'GET' && path === '/feed') {
      response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      response.write(`retry: 1000\nevent: hello\ndata: ${JSON.stringify({ version })}\n\n`);
      hub.add(response);
    } else if (request.method === 'POST' && path === '/events') {
      if (options.secret === undefined) return json(response, 403, { error: 'this server accepts no events: start it with --secret' });
      const body = await readBody(request, MAX_BODY_BYTES);
      if (body === null) return tooLarge(response, MAX_BODY_BYTES);
      if (!verify(body, options.secret, request.headers['x-converge-signature'])) return json(response, 401, { error: 'missing or wrong x-converge-signature (sha256=<hex HMAC-SHA256 of the body>)' });
      let events: PageChangeEvent | PageChangeEvent[];
      try {
        events = JSON.parse(body.toString('utf8')) as PageChangeEvent | PageChangeEvent[];
      } catch {
        return json(response, 400, { error: 'the body is not JSON' });
      }
      try {
        await engine.dispatchChange(events, { sourceId: 'http' });
      } catch (error) {
        const { code, message } = error as { code?: string; message?: string };
        return json(response, code === 'CONVERGE_VALIDATION' ? 400 : 503, { error: message ?? String(error), code });
      }
      json(response, 202, { accepted: Array.isArray(events) ? events.length : 1 });
    } else if (path.startsWith('/webhooks/')) {
      if (receiver === undefined) return json(response, 403, { error: 'this server accepts no webhooks: start it with --secret' });
      await forward(request, response, receiver.url);
    } else {
      json(response, 404, { error: `no route ${request.method} ${path}`, routes: ['GET /', 'GET /status', 'GET /metrics', 'GET /feed', 'POST /events', ...WEBHOOK_PROVIDERS.map((p) => `POST /webhooks/${p}`)] });
    }
  };

  const server: Server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) json(response, 500, { error: error instanceof Error ? error.message : String(error) });
      else response.end();
    });
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    await receiver?.close();
    await engine.close();
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new CliError(`converge serve: ${options.host}:${options.port} is already in use: pick another port with --port (or --port 0 for any free one)`);
    if (code === 'EACCES') throw new CliError(`converge serve: not allowed to listen on port ${options.port}: use a port above 1023`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new CliError(`converge serve: cannot listen on ${options.host}: give an address of this machine with --host (default 127.0.0.1)`);
    throw error;
  }
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  const shownHost = isIP(options.host) === 6 ? `[${options.host}]` : options.host;
  return {
    url: `http://${shownHost}:${port}`,
    engine,
    async close() {
      hub.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await receiver?.close();
      await engine.close();
    },
  };
}

export const serve = defineCommand({
  spec: {
    name: 'serve',
    summary: 'Serve an engine over HTTP: dashboard, /status, /metrics (Prometheus), /feed (server-sent events), signed events and git webhooks.',
    details:
      'POST /events takes one page-change event or an array (JSON), signed with the shared secret in\n' +
      'x-converge-signature: sha256=<hex HMAC-SHA256 of the body>. POST /webhooks/<provider> (github,\n' +
      'gitlab, gitea, generic) takes git push webhooks signed the provider\'s way with the same secret.\n' +
      'Without --secret (or CONVERGE_SECRET) the server is read-only. Stop it with Ctrl-C.',
    flags: {
      port: valueFlag('N', 'port to listen on; 0 picks a free one', { defaultText: '8080', parse: integer(0, 65_535) }),
      host: valueFlag('HOST', 'address to listen on', { defaultText: '127.0.0.1', parse: host }),
      secret: valueFlag('SECRET', 'shared secret (≥ 16 characters) for signed POST /events; default $CONVERGE_SECRET', { parse: secret }),
    },
    examples: ['converge serve --port 8080', 'CONVERGE_SECRET=$(openssl rand -hex 16) converge serve --host 0.0.0.0'],
  },
  async run({ flags }, context: CliContext) {
    const fromEnv = context.env.CONVERGE_SECRET;
    const key = flags.secret ?? (fromEnv === undefined || fromEnv === '' ? undefined : secret(fromEnv, 'CONVERGE_SECRET'));
    const version = (await import('./version.js')).VERSION;
    const running = await startServer({ port: flags.port ?? 8080, host: flags.host ?? '127.0.0.1', secret: key }, version);
    context.out(`${context.styles.bold('converge serve')}: listening on ${context.styles.cyan(running.url)} — dashboard /, /status, /metrics, /feed${key === undefined ? ' (read-only: no --secret)' : ', POST /events, POST /webhooks/<provider>'}`);
    await untilAborted(context.signal);
    await running.close();
    context.out('converge serve: stopped');
    return 0;
  },
});
