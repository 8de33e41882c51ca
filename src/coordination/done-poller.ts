/**
 * The bounded poll behind `waitUntilDone` for changes made by other processes: while anyone waits,
 * one query every `intervalMs` fetches the waited-on tasks that have become terminal and wakes their
 * waiters. SQLite has no cross-process notification, so it relies on this alone; PostgreSQL uses it
 * as the fallback for a missed or delayed NOTIFY. The timer is unref'd: the waiters' own timeouts keep
 * the process alive, the poll never does.
 */
import type { DoneWaiters } from './done-waiters.js';
import type { Task } from './task.js';
import type { Awaitable } from './task-store.js';

/** Polls for terminal tasks while `waiters` is not empty. */
export class DonePoller {
  readonly #waiters: DoneWaiters;
  readonly #fetchDone: (ids: string[]) => Awaitable<Task[]>;
  readonly #intervalMs: number;
  readonly #onError: (error: unknown) => void;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(waiters: DoneWaiters, fetchDone: (ids: string[]) => Awaitable<Task[]>, intervalMs: number, onError: (error: unknown) => void) {
    this.#waiters = waiters;
    this.#fetchDone = fetchDone;
    this.#intervalMs = intervalMs;
    this.#onError = onError;
  }

  /** Makes sure a poll is scheduled; call after registering a waiter. */
  schedule(): void {
    if (this.#timer !== undefined || this.#stopped) return;
    this.#timer = setTimeout(() => void this.#poll(), this.#intervalMs);
    this.#timer.unref();
  }

  /** Polls now (e.g. after a reconnect), then keeps the schedule. */
  async pollNow(): Promise<void> {
    await this.#poll();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #poll(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#stopped || this.#waiters.size === 0) return;
    try {
      for (const task of await this.#fetchDone(this.#waiters.ids())) this.#waiters.notify(task);
    } catch (error) {
      // A failed poll is retried on the next tick; the waiters' timeouts still bound the wait.
      this.#onError(error);
    }
    if (this.#waiters.size > 0) this.schedule();
  }
}
