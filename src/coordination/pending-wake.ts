/**
 * Wake-ups for idle claimers: "new pending tasks may exist". A claimer whose batched claim came back
 * empty arms a wake, claims once more (a task submitted before the wake was armed is found by that
 * claim), then waits for the wake. Stores fire it when tasks become pending: the memory and SQLite
 * stores for their own writes, PostgreSQL for every process's through LISTEN/NOTIFY. A wake also
 * fires after `timeoutMs` (the fallback poll for what no notification reaches, e.g. another process
 * on the same SQLite file); its timer is unref'd.
 */

/** An armed wake (see the file comment). */
export interface PendingWake {
  /** Resolves once the wake is armed: from then on every new pending task fires it. */
  readonly ready: Promise<void>;
  /** Resolves when a task may have become pending, or when the wake's timeout has passed. */
  readonly woken: Promise<void>;
  /** Disarms the wake and resolves `woken`. */
  cancel(): void;
}

/** The in-process side of wakes: armed wakes and who to fire. */
export class PendingWakers {
  readonly #armed = new Set<() => void>();
  readonly #onIdleChange: ((idle: boolean) => void) | undefined;

  /** `onIdleChange(true)` when the first wake is armed, `(false)` when the last one is gone. */
  constructor(onIdleChange?: (idle: boolean) => void) {
    this.#onIdleChange = onIdleChange;
  }

  /** Number of armed wakes. */
  get size(): number {
    return this.#armed.size;
  }

  /** Arms a wake; `ready` is what the store must do first (e.g. LISTEN and register as idle). */
  arm(timeoutMs: number, ready: Promise<void> = Promise.resolve()): PendingWake {
    let fire!: () => void;
    const woken = new Promise<void>((resolve) => {
      const timer = setTimeout(() => fire(), timeoutMs);
      timer.unref();
      fire = () => {
        if (!this.#armed.delete(fire)) return;
        clearTimeout(timer);
        if (this.#armed.size === 0) this.#onIdleChange?.(false);
        resolve();
      };
    });
    this.#armed.add(fire);
    if (this.#armed.size === 1) this.#onIdleChange?.(true);
    return { ready, woken, cancel: fire };
  }

  /** Fires every armed wake. */
  notify(): void {
    if (this.#armed.size === 0) return;
    for (const fire of [...this.#armed]) fire();
  }
}
