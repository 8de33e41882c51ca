/**
 * The colony's event bus (DESIGN §6): typed events, subscriptions filtered by type, colony and
 * stream, handlers run with bounded concurrency and a per-handler timeout, a failing handler
 * isolated (the others still run; the failure is counted and reported), history newest first, and
 * `waitFor`.
 */
import { z } from 'zod';
import { ClosedError } from '../shared/errors.js';
import { parseInput } from '../shared/validation.js';

/** Defaults of {@link EventBusOptions}. */
export const EVENT_BUS_DEFAULTS = Object.freeze({
  maxHistory: 1000,
  /** Handler calls running at once across the bus; the rest wait FIFO. */
  maxConcurrentHandlers: 10,
  /** A handler still running after this long is counted as timed out and its concurrency slot freed. */
  handlerTimeoutMs: 15_000,
});

/** One published event. */
export interface BusEvent<T extends string = string, D = unknown> {
  /** Bus-wide sequence number, from 1. */
  readonly id: number;
  readonly type: T;
  readonly data: D;
  /** Epoch ms. */
  readonly timestamp: number;
  readonly colonyId?: string | undefined;
  readonly streamId?: string | undefined;
  readonly workerId?: string | undefined;
}

/** A map from event type to its data type, for a typed bus: `EventBus<{ 'job.done': { id: string } }>`. */
export type EventMap = Record<string, unknown>;

/** `publish`'s argument. */
export interface PublishInput<M extends EventMap, T extends keyof M & string = keyof M & string> {
  readonly type: T;
  readonly data?: M[T];
  readonly colonyId?: string;
  readonly streamId?: string;
  readonly workerId?: string;
}

/** Which events a subscription or a query selects. Absent fields select everything. */
export interface EventFilter<T extends string = string> {
  /** One type or several. */
  readonly types?: T | readonly T[];
  readonly colonyId?: string;
  readonly streamId?: string;
  readonly workerId?: string;
}

/** `subscribe`'s argument. */
export interface EventSubscriptionInput<M extends EventMap> extends EventFilter<keyof M & string> {
  readonly handler: (event: BusEvent<keyof M & string, M[keyof M & string]>) => unknown;
}

/** `getHistory`'s options. */
export interface HistoryQuery<T extends string = string> extends EventFilter<T> {
  readonly limit?: number;
}

/** `waitFor`'s options. */
export interface WaitForOptions<M extends EventMap> extends EventFilter<keyof M & string> {
  /** Extra condition on the event. */
  readonly filter?: (event: BusEvent<keyof M & string, M[keyof M & string]>) => boolean;
  /** Resolves null after this long. */
  readonly timeoutMs: number;
}

/** `getStats()` */
export interface EventBusStats {
  subscriptions: number;
  published: number;
  handlerCalls: number;
  handlerErrors: number;
  handlerTimeouts: number;
  /** Handler calls running now / waiting for a concurrency slot. */
  running: number;
  waiting: number;
  history: number;
}

/** Options of {@link EventBus}. */
export interface EventBusOptions {
  maxHistory?: number;
  maxConcurrentHandlers?: number;
  handlerTimeoutMs?: number;
  /** Called for each failing or timed-out handler; without it, a process warning (once per subscription). */
  onHandlerError?: (error: unknown, info: { subscriptionId: string; event: BusEvent }) => void;
  /** Epoch-ms clock of event timestamps. */
  now?: () => number;
}

const OptionsSchema = z.strictObject({
  maxHistory: z.number().int().min(0).optional(),
  maxConcurrentHandlers: z.number().int().min(1).optional(),
  handlerTimeoutMs: z.number().int().min(1).max(2 ** 31 - 1).optional(),
  onHandlerError: z.custom<NonNullable<EventBusOptions['onHandlerError']>>((v) => typeof v === 'function', 'must be a function').optional(),
  now: z.custom<() => number>((v) => typeof v === 'function', 'must be a function').optional(),
});

const TypesSchema = z.union([z.string().min(1), z.array(z.string().min(1))]);
const FilterFields = {
  types: TypesSchema.optional(),
  colonyId: z.string().optional(),
  streamId: z.string().optional(),
  workerId: z.string().optional(),
};
const SubscribeSchema = z.strictObject({ ...FilterFields, handler: z.custom<(e: BusEvent) => unknown>((v) => typeof v === 'function', 'must be a function') });
const HistorySchema = z.strictObject({ ...FilterFields, limit: z.number().int().min(0).optional() });
const PublishSchema = z.strictObject({ type: z.string().min(1), data: z.unknown().optional(), colonyId: z.string().optional(), streamId: z.string().optional(), workerId: z.string().optional() });
const WaitSchema = z.strictObject({
  ...FilterFields,
  filter: z.custom<(e: BusEvent) => boolean>((v) => typeof v === 'function', 'must be a function').optional(),
  timeoutMs: z.number().int().min(0).max(2 ** 31 - 1),
});

interface Matcher {
  readonly types: ReadonlySet<string> | undefined;
  readonly colonyId: string | undefined;
  readonly streamId: string | undefined;
  readonly workerId: string | undefined;
}

interface Sub extends Matcher {
  readonly id: string;
  readonly handler: (event: BusEvent) => unknown;
  warned: boolean;
}

function matcher(filter: EventFilter): Matcher {
  const types = filter.types === undefined ? undefined : new Set(typeof filter.types === 'string' ? [filter.types] : filter.types);
  return { types, colonyId: filter.colonyId, streamId: filter.streamId, workerId: filter.workerId };
}

function matches(m: Matcher, event: BusEvent): boolean {
  return (
    (m.types === undefined || m.types.has(event.type)) &&
    (m.colonyId === undefined || m.colonyId === event.colonyId) &&
    (m.streamId === undefined || m.streamId === event.streamId) &&
    (m.workerId === undefined || m.workerId === event.workerId)
  );
}

/** See the file comment. `M` maps event types to their data, for typed publish and subscribe. */
export class EventBus<M extends EventMap = EventMap> {
  readonly #maxHistory: number;
  readonly #maxConcurrent: number;
  readonly #timeoutMs: number;
  readonly #onHandlerError: EventBusOptions['onHandlerError'];
  readonly #now: () => number;
  readonly #subs = new Map<string, Sub>();
  /** Pending `waitFor`s by id: resolves them with null. */
  readonly #waiters = new Map<string, () => void>();
  /** Oldest first; read backwards. */
  #history: BusEvent[] = [];
  readonly #queue: (() => void)[] = [];
  #subSeq = 0;
  #eventSeq = 0;
  #running = 0;
  #handlerCalls = 0;
  #handlerErrors = 0;
  #handlerTimeouts = 0;
  #closed = false;

  constructor(options: EventBusOptions = {}) {
    const o = parseInput(OptionsSchema, options, 'options');
    this.#maxHistory = o.maxHistory ?? EVENT_BUS_DEFAULTS.maxHistory;
    this.#maxConcurrent = o.maxConcurrentHandlers ?? EVENT_BUS_DEFAULTS.maxConcurrentHandlers;
    this.#timeoutMs = o.handlerTimeoutMs ?? EVENT_BUS_DEFAULTS.handlerTimeoutMs;
    this.#onHandlerError = o.onHandlerError;
    this.#now = o.now ?? Date.now;
  }

  /** Registers a handler for the events the filter selects; returns its id (`sub_1`, `sub_2`, …). */
  subscribe(input: EventSubscriptionInput<M>): string {
    if (this.#closed) throw new ClosedError('event bus');
    const parsed = parseInput(SubscribeSchema, input, 'subscription');
    const id = `sub_${++this.#subSeq}`;
    this.#subs.set(id, { id, handler: parsed.handler, warned: false, ...matcher(parsed) });
    return id;
  }

  /** True when the subscription existed. */
  unsubscribe(id: string): boolean {
    return this.#subs.delete(id);
  }

  /**
   * Records the event and runs every matching handler (bounded concurrency). Resolves when all of
   * them settled or timed out; never rejects for a handler's failure.
   */
  async publish<T extends keyof M & string>(input: PublishInput<M, T>): Promise<BusEvent<T, M[T]>> {
    if (this.#closed) throw new ClosedError('event bus');
    const parsed = parseInput(PublishSchema, input, 'event');
    const event: BusEvent<T, M[T]> = Object.freeze({
      id: ++this.#eventSeq,
      type: parsed.type as T,
      data: parsed.data as M[T],
      timestamp: this.#now(),
      colonyId: parsed.colonyId,
      streamId: parsed.streamId,
      workerId: parsed.workerId,
    });
    if (this.#maxHistory > 0) {
      this.#history.push(event);
      if (this.#history.length > this.#maxHistory * 2) this.#history = this.#history.slice(-this.#maxHistory);
    }
    const calls: Promise<void>[] = [];
    for (const sub of this.#subs.values()) if (matches(sub, event)) calls.push(this.#call(sub, event));
    if (calls.length > 0) await Promise.all(calls);
    return event;
  }

  /** Recorded events matching the query, newest first (at most `maxHistory` are kept). */
  getHistory(query: HistoryQuery<keyof M & string> = {}): BusEvent[] {
    const parsed = parseInput(HistorySchema, query, 'query');
    const m = matcher(parsed);
    const limit = parsed.limit ?? Infinity;
    const out: BusEvent[] = [];
    const history = this.#history;
    const oldest = Math.max(0, history.length - this.#maxHistory);
    for (let i = history.length - 1; i >= oldest && out.length < limit; i--) if (matches(m, history[i]!)) out.push(history[i]!);
    return out;
  }

  getStats(): EventBusStats {
    return {
      subscriptions: this.#subs.size - this.#waiters.size,
      published: this.#eventSeq,
      handlerCalls: this.#handlerCalls,
      handlerErrors: this.#handlerErrors,
      handlerTimeouts: this.#handlerTimeouts,
      running: this.#running,
      waiting: this.#queue.length,
      history: Math.min(this.#history.length, this.#maxHistory),
    };
  }

  /** The next event the filter selects, or null after `timeoutMs` (or when the bus closes). */
  waitFor(options: WaitForOptions<M>): Promise<BusEvent<keyof M & string, M[keyof M & string]> | null> {
    const parsed = parseInput(WaitSchema, options, 'options');
    if (this.#closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const m = matcher(parsed);
      const id = `wait_${++this.#subSeq}`;
      // Not unref'd: like a setTimeout, a wait with a deadline keeps the process until it answers
      // (unref'd, `await bus.waitFor({ timeoutMs })` in a script ended it with exit code 13 instead of null).
      const timer = setTimeout(() => finish(null), parsed.timeoutMs);
      const finish = (event: BusEvent | null): void => {
        clearTimeout(timer);
        this.#subs.delete(id);
        this.#waiters.delete(id);
        resolve(event as BusEvent<keyof M & string, M[keyof M & string]> | null);
      };
      this.#waiters.set(id, () => finish(null));
      // A waiter is a subscription outside the handler concurrency bound: it only records the event.
      this.#subs.set(id, {
        id,
        warned: false,
        ...m,
        handler: (event) => {
          if (parsed.filter === undefined || parsed.filter(event)) finish(event);
        },
      });
    });
  }

  /** Drops subscriptions and waiters (which resolve null); later publishes reject with ClosedError. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const cancel of [...this.#waiters.values()]) cancel();
    this.#subs.clear();
  }

  #call(sub: Sub, event: BusEvent): Promise<void> {
    if (sub.id.startsWith('wait_')) {
      sub.handler(event);
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const start = (): void => {
        this.#running++;
        this.#handlerCalls++;
        let done = false;
        const release = (): void => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          this.#running--;
          this.#queue.shift()?.();
          resolve();
        };
        const timer = setTimeout(() => {
          this.#handlerTimeouts++;
          this.#report(sub, event, new Error(`event handler ${sub.id} did not settle within ${this.#timeoutMs} ms (event ${event.type})`));
          release();
        }, this.#timeoutMs);
        timer.unref();
        Promise.resolve()
          .then(() => sub.handler(event))
          .then(release, (error: unknown) => {
            if (done) return;
            this.#handlerErrors++;
            this.#report(sub, event, error);
            release();
          });
      };
      if (this.#running < this.#maxConcurrent) start();
      else this.#queue.push(start);
    });
  }

  #report(sub: Sub, event: BusEvent, error: unknown): void {
    if (this.#onHandlerError !== undefined) {
      try {
        this.#onHandlerError(error, { subscriptionId: sub.id, event });
        return;
      } catch {
        // fall through to the warning
      }
    }
    if (sub.warned) return;
    sub.warned = true;
    process.emitWarning(`event bus handler ${sub.id} failed on ${event.type}: ${(error as Error)?.message ?? String(error)}`, { code: 'CONVERGE_EVENT_HANDLER' });
  }
}
