/**
 * `CompositeWatcher` (DESIGN §4): several watchers as one. Children's events are merged into one
 * stream through a bounded queue: a fast child waits for room (backpressure), nothing is dropped. A
 * child that throws is isolated — reported, and the others carry on. Leaving the iteration stops
 * every child; `stop()` stops every iteration in progress and is idempotent.
 */
import { ValidationError } from '../shared/errors.js';
import type { PageChangeEvent } from '../shared/events.js';
import { childController } from './abortable.js';
import { SourceError } from './errors.js';
import { EventQueue } from './event-queue.js';
import { type ContextPageSource, NO_WATCH_CONTEXT, type WatchContext, reportSourceError } from './source.js';

/** Options of {@link CompositeWatcher}. */
export interface CompositeWatcherOptions {
  sourceId?: string;
  /** Queue bound shared by the children. Default 4096 events. */
  capacity?: number;
  /** A crashing child. Default: reported to the engine (`source-error`), else a process warning. */
  onError?: (error: unknown) => void;
}

function childName(child: ContextPageSource, index: number): string {
  const id = (child as { sourceId?: unknown }).sourceId;
  return typeof id === 'string' && id.length > 0 ? id : `child ${index}`;
}

export class CompositeWatcher implements ContextPageSource {
  readonly static = false;
  /** Ready once every child that announces readiness is (a child that fails counts as ready). */
  readonly reportsReady = true;
  readonly sourceId: string;
  readonly children: readonly ContextPageSource[];
  readonly #capacity: number | undefined;
  readonly #onError: ((error: unknown) => void) | undefined;
  readonly #running = new Set<AbortController>();

  constructor(children: readonly ContextPageSource[], options: CompositeWatcherOptions = {}) {
    if (!Array.isArray(children) || children.length === 0) throw new ValidationError('children', 'needs at least one child watcher');
    children.forEach((child, i) => {
      if (child === null || typeof child !== 'object' || typeof child.watch !== 'function') throw new ValidationError(`children[${i}]`, 'must have a watch(signal) method');
    });
    this.children = Object.freeze([...children]);
    this.#capacity = options.capacity;
    this.#onError = options.onError;
    this.sourceId = options.sourceId ?? `composite:${children.map(childName).join('+')}`;
  }

  async *watch(signal: AbortSignal = new AbortController().signal, context: WatchContext = NO_WATCH_CONTEXT): AsyncGenerator<PageChangeEvent> {
    const controller = childController(signal);
    this.#running.add(controller);
    const queue = new EventQueue<PageChangeEvent>({ context, ...(this.#capacity === undefined ? {} : { capacity: this.#capacity }) });
    controller.signal.addEventListener('abort', () => queue.end(), { once: true });
    let waiting = this.children.length;
    const childReady = (): void => {
      if (--waiting === 0) context.ready?.();
    };
    const pumps = this.children.map(async (child, i) => {
      let ready = false;
      const markReady = (): void => {
        if (ready) return;
        ready = true;
        childReady();
      };
      const childContext: WatchContext = { hold: () => context.hold(), report: (error) => this.#report(error, context), ready: markReady };
      if (context.onQuiescence !== undefined) childContext.onQuiescence = context.onQuiescence;
      if (context.hostInWorker !== undefined) childContext.hostInWorker = context.hostInWorker;
      if (child.reportsReady !== true) markReady();
      try {
        for await (const event of child.watch!(controller.signal, childContext)) {
          if (controller.signal.aborted) break;
          await queue.push([event]);
        }
      } catch (error) {
        if (!controller.signal.aborted) this.#report(new SourceError(childName(child, i), 'child watcher failed; the others carry on', { cause: error }), context);
      } finally {
        markReady();
      }
    });
    void Promise.all(pumps).then(() => queue.end());
    try {
      yield* queue;
    } finally {
      controller.abort();
      this.#running.delete(controller);
      await Promise.all(pumps);
    }
  }

  /** Stops every iteration in progress (each ends after what it already queued). Idempotent. */
  stop(): void {
    for (const controller of this.#running) controller.abort();
    this.#running.clear();
  }

  #report(error: unknown, context: WatchContext): void {
    reportSourceError(this.sourceId, error, context, this.#onError);
  }
}
