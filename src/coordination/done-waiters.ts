/**
 * In-process registry of `waitUntilDone` callers, shared by the stores. A store calls `notify` when it
 * sees a task turn terminal (its own write, a PostgreSQL notification or a poll) and `closeAll` when it
 * closes. Each waiter has its own timer, so a forgotten wait cannot outlive its timeout.
 */
import { ClosedError } from '../shared/errors.js';
import { isTerminalState, type Task } from './task.js';

interface Waiter {
  resolve(task: Task | null): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/** Waiters keyed by task id. */
export class DoneWaiters {
  readonly #byId = new Map<string, Set<Waiter>>();
  readonly #onEmpty: ((id: string) => void) | undefined;

  /** `onEmpty(id)` runs when the last waiter of `id` is gone (woken, timed out or settled). */
  constructor(onEmpty?: (id: string) => void) {
    this.#onEmpty = onEmpty;
  }

  /** Number of task ids with at least one waiter. */
  get size(): number {
    return this.#byId.size;
  }

  /** Whether anyone waits for `id`. */
  has(id: string): boolean {
    return this.#byId.has(id);
  }

  /** The task ids being waited on. */
  ids(): string[] {
    return [...this.#byId.keys()];
  }

  /**
   * Registers a waiter: `promise` is settled by `notify` with the terminal task, with null once
   * `timeoutMs` has passed, or by the caller through `settle` (which removes only this waiter).
   */
  wait(id: string, timeoutMs: number): { promise: Promise<Task | null>; settle(task: Task | null): void } {
    let set = this.#byId.get(id);
    if (set === undefined) this.#byId.set(id, (set = new Set()));
    const waiters = set;
    let waiter!: Waiter;
    const promise = new Promise<Task | null>((resolve, reject) => {
      waiter = { resolve, reject, timer: setTimeout(() => settle(null), timeoutMs) };
    });
    const settle = (task: Task | null): void => {
      if (!waiters.delete(waiter)) return;
      clearTimeout(waiter.timer);
      if (waiters.size === 0 && this.#byId.get(id) === waiters) {
        this.#byId.delete(id);
        this.#onEmpty?.(id);
      }
      waiter.resolve(task);
    };
    waiters.add(waiter);
    return { promise, settle };
  }

  /** Wakes every waiter of `task.id` if the task is terminal; otherwise does nothing. */
  notify(task: Task): void {
    if (this.#byId.size === 0 || !isTerminalState(task.state)) return;
    const waiters = this.#byId.get(task.id);
    if (waiters === undefined) return;
    this.#byId.delete(task.id);
    this.#onEmpty?.(task.id);
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve(task);
    }
  }

  /** Rejects every waiter with `ClosedError(what)`. */
  closeAll(what: string): void {
    const all = [...this.#byId.values()];
    this.#byId.clear();
    for (const waiters of all) {
      for (const waiter of waiters) {
        clearTimeout(waiter.timer);
        waiter.reject(new ClosedError(what));
      }
    }
  }
}
