/**
 * Holds on the ingest ring's PENDING slot: the engine's in-flight token for changes a watcher or a
 * bridge has seen but not yet written.
 *
 * The convergence worker counts the ring as drained only when PENDING is 0 and HEAD = TAIL
 * (`Ring.isDrained`), and it declares quiescence only on a drained ring. A producer that accepted a
 * frame counts itself in PENDING until the frame is reserved; a watcher does the same for the whole
 * time it coalesces, hashes or reconciles, so "not yet written" is never mistaken for "settled".
 * Ordering: a holder writes its frames (which reserve them) before it releases, and the worker reads
 * PENDING before HEAD/TAIL, so it can never see both "no hold" and "nothing written".
 *
 * Works from any thread that has the ring's buffer: the main thread (bridges) and the watch worker.
 */
import { Slot } from '../shared/ring-layout.js';
import type { WatchContext } from './source.js';

/** Counts this thread's holds and keeps one PENDING unit on the ring while any is taken. */
export class IngestHold implements WatchContext {
  readonly #ctl: Int32Array;
  #count = 0;
  /** Bumped by releaseAll so that tokens handed out before it do nothing. */
  #generation = 0;

  readonly #mirror: Int32Array | undefined;

  /**
   * `mirror`: an Int32 slot this object keeps at 1 while it holds, so that if its thread dies the
   * owner of the thread can give the hold back ({@link releaseOrphaned}).
   */
  constructor(ringBuffer: SharedArrayBuffer, mirror?: SharedArrayBuffer) {
    // The control block's Int32 slots (ring-layout.ts); only PENDING and DATA_SIGNAL are touched.
    this.#ctl = new Int32Array(ringBuffer, 0, Slot.CLOSED + 1);
    this.#mirror = mirror === undefined ? undefined : new Int32Array(mirror, 0, 1);
  }

  /** Gives back the hold of a thread that died holding it (`mirror` as passed to that thread's IngestHold). */
  static releaseOrphaned(ringBuffer: SharedArrayBuffer, mirror: SharedArrayBuffer): void {
    if (Atomics.exchange(new Int32Array(mirror, 0, 1), 0, 0) !== 1) return;
    const ctl = new Int32Array(ringBuffer, 0, Slot.CLOSED + 1);
    Atomics.sub(ctl, Slot.PENDING, 1);
    Atomics.add(ctl, Slot.DATA_SIGNAL, 1);
    Atomics.notify(ctl, Slot.DATA_SIGNAL);
  }

  /** Holds currently taken through this object. */
  get count(): number {
    return this.#count;
  }

  hold(): () => void {
    if (this.#count++ === 0) {
      Atomics.add(this.#ctl, Slot.PENDING, 1);
      if (this.#mirror !== undefined) Atomics.store(this.#mirror, 0, 1);
    }
    const generation = this.#generation;
    let released = false;
    return () => {
      if (released || generation !== this.#generation) return;
      released = true;
      if (--this.#count === 0) this.#unpend();
    };
  }

  /** Gives back every hold at once (a stopped watcher must never leave the engine unable to settle). */
  releaseAll(): void {
    this.#generation++;
    if (this.#count === 0) return;
    this.#count = 0;
    this.#unpend();
  }

  #unpend(): void {
    if (this.#mirror !== undefined) Atomics.store(this.#mirror, 0, 0);
    Atomics.sub(this.#ctl, Slot.PENDING, 1);
    // The worker may be parked waiting for data that will now never come: wake it so that it
    // re-checks quiescence (the release alone writes nothing it would wake for).
    Atomics.add(this.#ctl, Slot.DATA_SIGNAL, 1);
    Atomics.notify(this.#ctl, Slot.DATA_SIGNAL);
  }
}
