/**
 * One dedicated connection that LISTENs on some channels and hands each notification to a callback. It connects on first use; when the connection drops it reports the error and reconnects
 * on the next `ready()`, calling `onReconnect` so that the owner can catch up on what it missed (the
 * store re-polls its waiters). Pooled connections cannot LISTEN: a pool hands a client to another
 * caller, who would then receive, or lose, the notifications.
 */
import { ClosedError, StoreError } from '../shared/errors.js';
import type { PgClient, PgConfig } from './optional-deps.js';
import { quoteIdent } from './postgres-schema.js';

/** `application_name` of LISTEN connections, so that operators can find them in pg_stat_activity. */
export const LISTENER_APPLICATION_NAME = 'converge-listener';

/** Callbacks of {@link PgListener}. */
export interface PgListenerHandlers {
  readonly onNotify: (channel: string, payload: string) => void;
  readonly onError: (error: unknown) => void;
  readonly onReconnect: () => void;
}

/** A LISTEN connection with lazy (re)connection. */
export class PgListener {
  readonly #newClient: (extra: PgConfig) => Promise<PgClient>;
  readonly #channels: readonly string[];
  readonly #handlers: PgListenerHandlers;
  #client: PgClient | undefined;
  #connecting: Promise<void> | undefined;
  #everConnected = false;
  #closed = false;

  constructor(newClient: (extra: PgConfig) => Promise<PgClient>, channels: readonly string[], handlers: PgListenerHandlers) {
    this.#newClient = newClient;
    this.#channels = channels;
    this.#handlers = handlers;
  }

  /** Resolves once the connection is listening (connecting or reconnecting if needed). */
  ready(): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError('LISTEN connection'));
    if (this.#client !== undefined) return Promise.resolve();
    this.#connecting ??= this.#connect().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#connecting?.catch(() => undefined);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => undefined);
  }

  async #connect(): Promise<void> {
    // A LISTEN connection idles by design: no statement timeout on it.
    const client = await this.#newClient({ application_name: LISTENER_APPLICATION_NAME, keepAlive: true, statement_timeout: 0 });
    client.on('notification', (message) => {
      if (this.#channels.includes(message.channel)) this.#handlers.onNotify(message.channel, message.payload ?? '');
    });
    const lost = (error?: unknown): void => {
      if (this.#client !== client) return;
      this.#client = undefined;
      if (!this.#closed) this.#handlers.onError(new StoreError(`LISTEN connection on ${this.#channels.join(', ')} lost; reconnecting on the next poll`, { cause: error }));
    };
    client.on('error', lost);
    client.on('end', () => lost());
    try {
      await client.connect();
      for (const channel of this.#channels) await client.query(`LISTEN ${quoteIdent(channel)}`);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    if (this.#closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.#client = client;
    if (this.#everConnected) this.#handlers.onReconnect();
    this.#everConnected = true;
  }
}
