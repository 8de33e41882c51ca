/**
 * Leader election on PostgreSQL session advisory locks, so that one replica of many runs a given
 * source's watchers. The lock lives as long as the session that took it, so each handle owns a
 * dedicated connection (never a pooled one: returning it to the pool would hand the lock to whoever
 * borrows the connection next). If that connection dies the server drops the lock; the handle notices
 * (connection error, or a failed health check every `checkIntervalMs`), reports `isLeader === false`
 * and aborts `signal`, so the holder stops its work before another replica takes over.
 */
import { StoreError } from '../shared/errors.js';
import type { PgClient, PgConfig } from './optional-deps.js';

/** Options of `PostgresStore.leaderLock`. */
export interface LeaderLockOptions {
  /** How often the holder's connection is checked. Default 5 000 ms. */
  readonly checkIntervalMs?: number;
}

const DEFAULT_CHECK_INTERVAL_MS = 5_000;
/** `application_name` of leader-lock connections, so that operators can find them in pg_stat_activity. */
export const LEADER_APPLICATION_NAME = 'converge-leader';

/** A handle on one named leadership. Obtain it from `PostgresStore.leaderLock(name)`. */
export class LeaderLock {
  /** The leadership's name, e.g. `source:file:/srv/repo`. */
  readonly name: string;
  readonly #key: string;
  readonly #newClient: (extra: PgConfig) => Promise<PgClient>;
  readonly #checkIntervalMs: number;
  readonly #onRelease: (lock: LeaderLock) => void;
  #client: PgClient | undefined;
  #leader = false;
  #controller = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #released = false;

  /** @internal Use `PostgresStore.leaderLock`. */
  constructor(name: string, key: string, newClient: (extra: PgConfig) => Promise<PgClient>, options: LeaderLockOptions, onRelease: (lock: LeaderLock) => void) {
    this.name = name;
    this.#key = key;
    this.#newClient = newClient;
    this.#checkIntervalMs = options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS;
    this.#onRelease = onRelease;
  }

  /** True while this handle holds the lock. */
  get isLeader(): boolean {
    return this.#leader;
  }

  /** Aborted when the leadership held through this handle is lost or released; renewed by the next acquisition. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Tries once to become leader; true if this handle holds the lock afterwards. */
  async tryAcquire(): Promise<boolean> {
    if (this.#released) throw new StoreError(`leader lock ${JSON.stringify(this.name)} was released; take a new one`);
    if (this.#leader) return true;
    try {
      const client = await this.#connection();
      const result = await client.query<{ acquired: boolean }>('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS acquired', [this.#key]);
      if (result.rows[0]?.acquired !== true) return false;
    } catch (error) {
      throw new StoreError(`leader lock ${JSON.stringify(this.name)}: ${String(error)}`, { cause: error });
    }
    if (this.#controller.signal.aborted) this.#controller = new AbortController();
    this.#leader = true;
    this.#timer = setInterval(() => void this.#check(), this.#checkIntervalMs);
    this.#timer.unref();
    return true;
  }

  /** Gives the leadership up (if held) and closes the connection. Idempotent. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    this.#onRelease(this);
    const client = this.#client;
    const wasLeader = this.#leader;
    this.#lose('released');
    this.#client = undefined;
    if (client === undefined) return;
    // Ending the session releases its advisory locks; unlock first so the next leader need not wait for it.
    if (wasLeader) await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [this.#key]).catch(() => undefined);
    await client.end().catch(() => undefined);
  }

  async #connection(): Promise<PgClient> {
    if (this.#client !== undefined) return this.#client;
    const client = await this.#newClient({ application_name: LEADER_APPLICATION_NAME, keepAlive: true });
    const dropped = (): void => {
      if (this.#client !== client) return;
      this.#client = undefined;
      this.#lose('lost: its connection ended');
    };
    client.on('error', dropped);
    client.on('end', dropped);
    await client.connect();
    this.#client = client;
    return client;
  }

  async #check(): Promise<void> {
    const client = this.#client;
    if (!this.#leader || client === undefined) return;
    try {
      await client.query('SELECT 1');
    } catch {
      if (this.#client === client) {
        this.#client = undefined;
        this.#lose('lost: its connection failed a health check');
        await client.end().catch(() => undefined);
      }
    }
  }

  #lose(why: string): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    if (!this.#leader) return;
    this.#leader = false;
    this.#controller.abort(new StoreError(`leadership ${JSON.stringify(this.name)} ${why}`));
  }
}
