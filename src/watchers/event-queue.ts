/**
 * A bounded queue between a push-style producer (a native watcher callback, an HTTP handler, a
 * child watcher) and one async-iterating consumer. `push` resolves when there is room again: the
 * producer is slowed down, nothing is dropped.
 *
 * With a {@link WatchContext} the queue keeps a hold while it has items, and also while the consumer
 * is still busy with the item it took last (until it asks for the next one): between "taken from the
 * queue" and "stored by the consumer" there is an await, and no hold may lapse in it.
 */
import type { WatchContext } from './source.js';
import { NO_WATCH_CONTEXT } from './source.js';

/** Default capacity: enough to ride out a burst, small enough to bound memory. */
export const DEFAULT_QUEUE_CAPACITY = 4_096;

export class EventQueue<T> implements AsyncIterable<T> {
  readonly #capacity: number;
  readonly #context: WatchContext;
  #items: T[] = [];
  #head = 0;
  #ended = false;
  #error: { error: unknown } | undefined;
  #release: (() => void) | undefined;
  #waitingConsumer: ((result: IteratorResult<T>) => void) | undefined;
  #failConsumer: ((error: unknown) => void) | undefined;
  #roomWaiters: (() => void)[] = [];

  constructor(options: { capacity?: number; context?: WatchContext } = {}) {
    this.#capacity = options.capacity ?? DEFAULT_QUEUE_CAPACITY;
    this.#context = options.context ?? NO_WATCH_CONTEXT;
  }

  /** Items waiting. */
  get size(): number {
    return this.#items.length - this.#head;
  }

  /** Appends items; resolves once the queue is below capacity again. Ignored after end/fail. */
  push(items: readonly T[]): Promise<void> {
    if (this.#ended || items.length === 0) return Promise.resolve();
    this.#release ??= this.#context.hold();
    let i = 0;
    if (this.#waitingConsumer !== undefined) {
      const resolve = this.#waitingConsumer;
      this.#waitingConsumer = undefined;
      this.#failConsumer = undefined;
      resolve({ value: items[0]!, done: false });
      i = 1;
    }
    for (; i < items.length; i++) this.#items.push(items[i]!);
    if (this.size < this.#capacity) return Promise.resolve();
    return new Promise((resolve) => this.#roomWaiters.push(resolve));
  }

  /** No more items: the consumer finishes after draining what is queued. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#settleEnd();
  }

  /** Ends the iteration with `error` once queued items are drained. */
  fail(error: unknown): void {
    if (this.#ended) return;
    this.#error = { error };
    this.end();
  }

  #settleEnd(): void {
    if (this.size > 0) return;
    this.#dropHold();
    this.#wakeProducers();
    const resolve = this.#waitingConsumer;
    const reject = this.#failConsumer;
    this.#waitingConsumer = undefined;
    this.#failConsumer = undefined;
    if (resolve === undefined) return;
    if (this.#error !== undefined) reject!(this.#error.error);
    else resolve({ value: undefined, done: true });
  }

  #dropHold(): void {
    const release = this.#release;
    this.#release = undefined;
    release?.();
  }

  #wakeProducers(): void {
    for (const resolve of this.#roomWaiters.splice(0)) resolve();
  }

  #next(): Promise<IteratorResult<T>> {
    if (this.size > 0) {
      const value = this.#items[this.#head]!;
      this.#items[this.#head++] = undefined as T;
      if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
        this.#items = this.#items.slice(this.#head);
        this.#head = 0;
      }
      if (this.size < this.#capacity) this.#wakeProducers();
      return Promise.resolve({ value, done: false });
    }
    // Asking for the next item means the previous one is stored wherever the consumer keeps it.
    if (this.#ended) {
      this.#dropHold();
      if (this.#error !== undefined) return Promise.reject(this.#error.error);
      return Promise.resolve({ value: undefined, done: true });
    }
    this.#dropHold();
    return new Promise((resolve, reject) => {
      this.#waitingConsumer = resolve;
      this.#failConsumer = reject;
    });
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => this.#next(),
      return: () => {
        this.#ended = true;
        this.#items = [];
        this.#head = 0;
        this.#dropHold();
        this.#wakeProducers();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

/**
 * Fan-out to every iteration in progress: each `watch()` gets a queue of its own, `publish` pushes
 * to all of them and resolves when every one has room (backpressure). With nobody watching,
 * `publish` delivers nothing: check `watched` where that must be refused loudly.
 */
export class Broadcast<T> {
  readonly #queues = new Set<EventQueue<T>>();

  /** True while some consumer iterates {@link watch}. */
  get watched(): boolean {
    return this.#queues.size > 0;
  }

  publish(items: readonly T[]): Promise<void> {
    if (items.length === 0 || this.#queues.size === 0) return Promise.resolve();
    return Promise.all([...this.#queues].map((q) => q.push(items))).then(() => undefined);
  }

  async *watch(signal: AbortSignal, context: WatchContext): AsyncGenerator<T> {
    const queue = new EventQueue<T>({ context });
    const onAbort = (): void => queue.end();
    signal.addEventListener('abort', onAbort, { once: true });
    this.#queues.add(queue);
    try {
      if (!signal.aborted) yield* queue;
    } finally {
      this.#queues.delete(queue);
      signal.removeEventListener('abort', onAbort);
    }
  }
}
