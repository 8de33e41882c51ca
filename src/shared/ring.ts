/**
 * A lock-free multi-producer, single-consumer ring of variable-length byte frames over a
 * SharedArrayBuffer. Layout and sentinels: see `ring-layout.ts`.
 *
 * Protocol (all Atomics operations are sequentially consistent):
 *  1. A producer reserves room for all the frames of one write by one CAS on TAIL: `align4(4 + len)`
 *     per frame, plus padding to the end of the data area where a record would straddle it. A
 *     reservation is visible to everyone at once: `HEAD !== TAIL` means "not empty", which is what
 *     quiescence relies on. It marks the reservation's first word with its size (RESERVED), and
 *     only then stops counting the write as PENDING — before publishing, so a consumer that sees the
 *     frame also sees that nothing of it is pending any more.
 *  2. It copies the payloads, then publishes the records by storing their lengths in the headers,
 *     the reservation's first header last.
 *  3. The consumer reads headers from HEAD; an unpublished header (0 or RESERVED) means the next
 *     record is not published yet, so it stops there (records are consumed strictly in reservation
 *     order). It zeroes what it consumed, then stores the new HEAD, then wakes producers waiting for
 *     space. A reservation left unpublished past `stallTimeoutMs` (its producer died) is skipped,
 *     counted (`stalledReservations`) and reported (`onStall`), so the ring never wedges.
 *
 * Parking: the consumer sets PARKED, re-checks for data, and only then sleeps on DATA_SIGNAL; a
 * producer publishes first and reads PARKED second. Because both sides write-then-read with
 * sequentially consistent atomics, at least one of them sees the other, so a wake is never lost,
 * and a producer wakes the consumer once per batch only when it is actually parked.
 */
import { ClosedError, FrameTooLargeError, RingFullError, TimeoutError, ValidationError } from './errors.js';
import {
  COUNTER,
  CONTROL_BYTES,
  DEFAULT_RING_BYTES,
  DEFAULT_STALL_TIMEOUT_MS,
  DEFAULT_SPIN_ITERATIONS,
  MAIN_THREAD_WAIT_FALLBACK_MS,
  MAX_RING_BYTES,
  MIN_RING_BYTES,
  RECORD_HEADER_BYTES,
  RESERVED,
  RESERVED_WORDS_MASK,
  type RingCounterName,
  Slot,
  align,
} from './ring-layout.js';

/** What a producer does when the ring has no room: wait for space (default) or throw RingFullError. */
export type OnFull = 'wait' | 'throw';

/** Snapshot of a ring's counters, as shown in `engine.getStatus().ring`. */
export interface RingStats {
  capacity: number;
  usedBytes: number;
  framesWritten: number;
  bytesWritten: number;
  framesRead: number;
  bytesRead: number;
  fullWaits: number;
  fullRejects: number;
  wakes: number;
  pendingWriters: number;
  /** Reservations whose producer never published them (it died), skipped after the stall timeout. */
  stalledReservations: number;
  /** Bytes of ring space those reservations held. */
  stalledBytes: number;
  closed: boolean;
}

/** Rounds a requested size up to a power of two inside the allowed range, or throws ValidationError. */
export function ringCapacityFor(bytes: number, field = 'ringBytes'): number {
  if (!Number.isInteger(bytes) || bytes < MIN_RING_BYTES || bytes > MAX_RING_BYTES) {
    throw new ValidationError(field, `must be an integer between ${MIN_RING_BYTES} and ${MAX_RING_BYTES}`);
  }
  return 2 ** Math.ceil(Math.log2(bytes));
}

/**
 * Views over one ring's SharedArrayBuffer. Create the buffer once with {@link Ring.allocate}, send it
 * to other threads, and wrap it there with `new Ring(buffer)`; then take a {@link RingProducer} or the
 * one {@link RingConsumer}.
 */
export class Ring {
  readonly buffer: SharedArrayBuffer;
  readonly capacity: number;
  /** Largest payload a single frame can carry. Half the data area keeps a padded record placeable. */
  readonly maxFrameBytes: number;
  /** @internal */ readonly ctl: Int32Array;
  /** @internal */ readonly bytes: Uint8Array;
  /** @internal */ readonly words: Int32Array;
  /** @internal */ readonly mask: number;

  /** Allocates a ring buffer whose data area is `bytes` rounded up to a power of two. */
  static allocate(bytes: number = DEFAULT_RING_BYTES): SharedArrayBuffer {
    return new SharedArrayBuffer(CONTROL_BYTES + ringCapacityFor(bytes));
  }

  constructor(buffer: SharedArrayBuffer) {
    const capacity = buffer.byteLength - CONTROL_BYTES;
    if (capacity < MIN_RING_BYTES || (capacity & (capacity - 1)) !== 0) {
      throw new ValidationError('buffer', 'is not a ring buffer (use Ring.allocate)');
    }
    this.buffer = buffer;
    this.capacity = capacity;
    this.mask = capacity - 1;
    this.maxFrameBytes = capacity / 2 - RECORD_HEADER_BYTES;
    this.ctl = new Int32Array(buffer, 0, CONTROL_BYTES / 4);
    this.bytes = new Uint8Array(buffer, CONTROL_BYTES, capacity);
    this.words = new Int32Array(buffer, CONTROL_BYTES, capacity / 4);
  }

  /** Bytes reserved but not yet consumed (reserved-but-unpublished records included). */
  usedBytes(): number {
    // Read TAIL after HEAD: HEAD only grows towards TAIL, so the difference can't go negative.
    const head = Atomics.load(this.ctl, Slot.HEAD);
    return (Atomics.load(this.ctl, Slot.TAIL) - head) | 0;
  }

  /**
   * True when no frame is reserved, in flight or unread, and no producer has accepted a frame it has
   * not reserved yet. PENDING is read first: a producer reserves before it leaves PENDING, so seeing
   * PENDING = 0 and then HEAD = TAIL means nothing it accepted can still appear.
   */
  isDrained(): boolean {
    if (Atomics.load(this.ctl, Slot.PENDING) !== 0) return false;
    return this.usedBytes() === 0;
  }

  isClosed(): boolean {
    return Atomics.load(this.ctl, Slot.CLOSED) === 1;
  }

  /**
   * Wakes the consumer if it is parked in {@link RingConsumer.waitForData}, without writing data.
   * Used to make a parked worker thread look at its MessagePort (a control-plane request).
   */
  nudge(): void {
    Atomics.add(this.ctl, Slot.DATA_SIGNAL, 1);
    Atomics.notify(this.ctl, Slot.DATA_SIGNAL);
  }

  /** Marks the ring closed and wakes every sleeper; waiting producers reject with ClosedError. */
  close(): void {
    Atomics.store(this.ctl, Slot.CLOSED, 1);
    Atomics.add(this.ctl, Slot.DATA_SIGNAL, 1);
    Atomics.notify(this.ctl, Slot.DATA_SIGNAL);
    Atomics.add(this.ctl, Slot.SPACE_SIGNAL, 1);
    Atomics.notify(this.ctl, Slot.SPACE_SIGNAL);
  }

  /** @internal Adds to a 64-bit (lo, hi) counter without a lock: carry into hi on lo overflow. */
  bump(name: RingCounterName, n: number): void {
    const slot = COUNTER[name];
    const before = Atomics.add(this.ctl, slot, n) >>> 0;
    if (before + n > 0xffff_ffff) Atomics.add(this.ctl, slot + 1, 1);
  }

  /** Reads a 64-bit counter consistently (re-reads if the high word moved meanwhile). */
  counter(name: RingCounterName): number {
    const slot = COUNTER[name];
    for (;;) {
      const hi = Atomics.load(this.ctl, slot + 1);
      const lo = Atomics.load(this.ctl, slot) >>> 0;
      if (Atomics.load(this.ctl, slot + 1) === hi) return hi * 0x1_0000_0000 + lo;
    }
  }

  stats(): RingStats {
    return {
      capacity: this.capacity,
      usedBytes: this.usedBytes(),
      framesWritten: this.counter('framesWritten'),
      bytesWritten: this.counter('bytesWritten'),
      framesRead: this.counter('framesRead'),
      bytesRead: this.counter('bytesRead'),
      fullWaits: this.counter('fullWaits'),
      fullRejects: this.counter('fullRejects'),
      wakes: this.counter('wakes'),
      pendingWriters: Atomics.load(this.ctl, Slot.PENDING),
      stalledReservations: this.counter('stalledReservations'),
      stalledBytes: this.counter('stalledBytes'),
      closed: this.isClosed(),
    };
  }
}

interface QueuedWrite {
  frames: readonly Uint8Array[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** Options of a {@link RingProducer}. */
export interface RingProducerOptions {
  onFull?: OnFull;
}

/**
 * One thread's handle for writing frames. Frames written through one producer come out in the order
 * they were written, also across waits for space: a write that arrives while an earlier one waits
 * queues behind it instead of overtaking it.
 */
export class RingProducer {
  readonly #ring: Ring;
  readonly #onFull: OnFull;
  readonly #queue: QueuedWrite[] = [];
  #draining = false;

  constructor(ring: Ring, options: RingProducerOptions = {}) {
    this.#ring = ring;
    this.#onFull = options.onFull ?? 'wait';
  }

  get ring(): Ring {
    return this.#ring;
  }

  /** Number of writes waiting for space on this producer. */
  get queuedWrites(): number {
    return this.#queue.length;
  }

  /**
   * Writes frames as one contiguous reservation (one CAS, one wake). Returns `undefined` when they
   * were written at once; otherwise a promise that resolves once they are in the ring (onFull
   * 'wait'), without ever blocking this thread. With onFull 'throw' the write is all or nothing: the
   * frames go in as one reservation, or none of them does and RingFullError is thrown (a batch larger
   * than the whole ring can never go in). The frames are counted as pending for quiescence from this
   * call on.
   */
  write(frames: Uint8Array | readonly Uint8Array[]): Promise<void> | undefined {
    const list = frames instanceof Uint8Array ? [frames] : frames;
    if (list.length === 0) return undefined;
    checkSizes(this.#ring, list);
    if (this.#ring.isClosed()) throw new ClosedError('ring');
    if (this.#onFull === 'throw') {
      if (this.#queue.length === 0 && tryWriteFrames(this.#ring, list, false)) return undefined;
      throw fullError(this.#ring, list);
    }
    const chunks = chunkFrames(this.#ring, list);
    let written = 0;
    if (this.#queue.length === 0) {
      while (written < chunks.length && tryWriteFrames(this.#ring, chunks[written]!, false)) written++;
      if (written === chunks.length) return undefined;
    }
    let last: Promise<void> | undefined;
    for (let i = written; i < chunks.length; i++) {
      // Only the last chunk's promise reaches the caller; an earlier one rejects exactly when the
      // last does (close rejects the whole queue), so it must not surface as an unhandled rejection.
      last?.catch(ignore);
      last = this.#enqueue(chunks[i]!);
    }
    return last;
  }

  /**
   * Writes frames, blocking this thread with Atomics.wait while the ring is full. For worker threads
   * only (the main thread must use {@link write}). Throws ClosedError if the ring closes meanwhile.
   */
  writeSync(frames: Uint8Array | readonly Uint8Array[], timeoutMs = Infinity): boolean {
    const list = frames instanceof Uint8Array ? [frames] : frames;
    if (list.length === 0) return true;
    checkSizes(this.#ring, list);
    const ring = this.#ring;
    if (this.#onFull === 'throw') {
      if (tryWriteFrames(ring, list, false)) return true;
      throw fullError(ring, list);
    }
    const chunks = chunkFrames(ring, list);
    if (chunks.length > 1) {
      // Written in order; a timeout part-way leaves the earlier chunks written (reported as false).
      for (const chunk of chunks) if (!this.writeSync(chunk, timeoutMs)) return false;
      return true;
    }
    if (tryWriteFrames(ring, list, false)) return true;
    const deadline = performance.now() + timeoutMs;
    Atomics.add(ring.ctl, Slot.PENDING, 1);
    Atomics.add(ring.ctl, Slot.SPACE_WAITERS, 1);
    ring.bump('fullWaits', 1);
    let written = false;
    try {
      for (;;) {
        if (ring.isClosed()) throw new ClosedError('ring');
        const signal = Atomics.load(ring.ctl, Slot.SPACE_SIGNAL);
        // On success the write leaves PENDING itself, before it publishes (see the file comment); it
        // can throw only after that (a reservation skipped as stalled).
        let done: boolean;
        try {
          done = tryWriteFrames(ring, list, true);
        } catch (error) {
          written = true;
          throw error;
        }
        if (done) return (written = true);
        const left = deadline - performance.now();
        if (left <= 0) return false;
        Atomics.wait(ring.ctl, Slot.SPACE_SIGNAL, signal, Math.min(left, 1_000));
      }
    } finally {
      Atomics.sub(ring.ctl, Slot.SPACE_WAITERS, 1);
      if (!written) Atomics.sub(ring.ctl, Slot.PENDING, 1);
    }
  }

  #enqueue(frames: readonly Uint8Array[]): Promise<void> {
    // Count the frames as pending before returning: quiescence must not be declared while a write
    // that the caller already handed over is still waiting for space.
    Atomics.add(this.#ring.ctl, Slot.PENDING, 1);
    this.#ring.bump('fullWaits', 1);
    const promise = new Promise<void>((resolve, reject) => this.#queue.push({ frames, resolve, reject }));
    if (!this.#draining) void this.#drainQueue();
    return promise;
  }

  async #drainQueue(): Promise<void> {
    const ring = this.#ring;
    this.#draining = true;
    Atomics.add(ring.ctl, Slot.SPACE_WAITERS, 1);
    try {
      while (this.#queue.length > 0) {
        const next = this.#queue[0]!;
        if (ring.isClosed()) {
          this.#rejectAll(new ClosedError('ring'));
          return;
        }
        const signal = Atomics.load(ring.ctl, Slot.SPACE_SIGNAL);
        // On success the write leaves PENDING itself, before it publishes (see the file comment).
        let written: boolean;
        try {
          written = tryWriteFrames(ring, next.frames, true);
        } catch (error) {
          // Reserved (no longer pending) but skipped as stalled before it could publish.
          this.#queue.shift();
          next.reject(error);
          continue;
        }
        if (written) {
          this.#queue.shift();
          next.resolve();
          continue;
        }
        await waitOnMainThread(ring.ctl, Slot.SPACE_SIGNAL, signal);
      }
    } finally {
      Atomics.sub(ring.ctl, Slot.SPACE_WAITERS, 1);
      this.#draining = false;
    }
  }

  #rejectAll(error: unknown): void {
    for (const item of this.#queue.splice(0)) {
      Atomics.sub(this.#ring.ctl, Slot.PENDING, 1);
      item.reject(error);
    }
  }
}

/** Called for each frame; the view is valid only during the call (the bytes are zeroed after). */
export type FrameVisitor = (payload: Uint8Array) => void;

/** A reservation the consumer skipped because its producer never published it. */
export interface StalledReservation {
  /** Ring position (free-running byte counter) where it started. */
  position: number;
  /** Ring bytes it held (its frames are lost). */
  bytes: number;
  /** How long the consumer waited on it, in ms. */
  waitedMs: number;
}

/** Options of a {@link RingConsumer}. */
export interface RingConsumerOptions {
  spinIterations?: number;
  /**
   * How long a reservation may stay unpublished before its producer is taken for dead and the
   * reservation is skipped (default 5 s). A producer that is merely paused that long and then
   * publishes gets a TimeoutError instead of writing into space that is no longer its own.
   */
  stallTimeoutMs?: number;
  /** Called (on the consumer's thread, after the drain) for each reservation skipped as stalled. */
  onStall?: (stall: StalledReservation) => void;
  /** Milliseconds clock for the stall timeout (default `performance.now`); inject one in tests. */
  clock?: () => number;
}

/** The ring's single consumer. Create exactly one per ring, on the thread that drains it. */
export class RingConsumer {
  readonly #ring: Ring;
  readonly #spin: number;
  readonly #stallTimeoutMs: number;
  readonly #onStall: ((stall: StalledReservation) => void) | undefined;
  readonly #clock: () => number;
  /** The HEAD at which the consumer last found an unpublished reservation, since when, and TAIL then. */
  #waitingAt = 0;
  #waitingSince = -1;
  #tailThen = 0;

  constructor(ring: Ring, options: RingConsumerOptions = {}) {
    this.#ring = ring;
    this.#spin = options.spinIterations ?? DEFAULT_SPIN_ITERATIONS;
    this.#stallTimeoutMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    this.#onStall = options.onStall;
    this.#clock = options.clock ?? (() => performance.now());
  }

  get ring(): Ring {
    return this.#ring;
  }

  /** The current value of the wake signal; pass it to {@link waitForData} as `since`. */
  signal(): number {
    return Atomics.load(this.#ring.ctl, Slot.DATA_SIGNAL);
  }

  /** True if a published frame (or padding) is waiting at HEAD. */
  hasData(): boolean {
    const ring = this.#ring;
    const head = Atomics.load(ring.ctl, Slot.HEAD);
    const header = Atomics.load(ring.words, (head & ring.mask) >> 2);
    return header !== 0 && header < RESERVED;
  }

  /**
   * Reads up to `maxFrames` published frames in order, calling `visit` for each, then releases their
   * space in one step. Stops at the first reserved-but-unpublished record. Returns frames read. If
   * `visit` throws, the frames before it and the throwing one are consumed and the error rethrown.
   */
  drain(visit: FrameVisitor, maxFrames = Infinity): number {
    const ring = this.#ring;
    const { bytes, words, mask, ctl, capacity } = ring;
    const start = Atomics.load(ctl, Slot.HEAD);
    let head = start;
    let frames = 0;
    let payloadBytes = 0;
    let stalls: StalledReservation[] | undefined;
    try {
      // Never read more than one lap: the bytes consumed in this drain are zeroed only on release,
      // so after a completely full ring the next header position still holds the first record.
      while (frames < maxFrames && ((head - start) | 0) < capacity) {
        const index = head & mask;
        const header = Atomics.load(words, index >> 2);
        if (header === 0 || header >= RESERVED) {
          const skip = this.#stalled(head, header);
          if (skip === 0) break;
          (stalls ??= []).push({ position: head, bytes: skip, waitedMs: this.#clock() - this.#waitingSince });
          this.#waitingSince = -1;
          head = (head + skip) | 0;
          continue;
        }
        if (header < 0) {
          head = (head - header) | 0;
          continue;
        }
        const begin = index + RECORD_HEADER_BYTES;
        head = (head + align(RECORD_HEADER_BYTES + header)) | 0;
        frames++;
        payloadBytes += header;
        visit(bytes.subarray(begin, begin + header));
      }
    } finally {
      if (head !== start) this.#release(start, head, frames, payloadBytes);
      if (head !== this.#waitingAt) this.#waitingSince = -1;
      if (stalls !== undefined) this.#report(stalls);
    }
    return frames;
  }

  /**
   * At an unpublished header: 0 while the reservation is young (or the ring is empty), else the
   * bytes to skip. A RESERVED header holds its reservation's size. A 0 header past the timeout is a
   * producer that died between its CAS and its mark: its reservation is all zeros up to the next
   * reservation's first word, which is non-zero by now — every reservation made before the stall
   * was first seen is as old as the timeout — or up to TAIL as it was then.
   */
  #stalled(head: number, header: number): number {
    const ring = this.#ring;
    const tail = Atomics.load(ring.ctl, Slot.TAIL);
    // An empty ring (a RESERVED word here would be the stale mark of a producer skipped as dead).
    if (tail === head) return 0;
    const now = this.#clock();
    if (this.#waitingSince < 0 || this.#waitingAt !== head) {
      this.#waitingAt = head;
      this.#waitingSince = now;
      this.#tailThen = Atomics.load(ring.ctl, Slot.TAIL);
      return 0;
    }
    if (now - this.#waitingSince < this.#stallTimeoutMs) return 0;
    if (header !== 0) return Math.min((header & RESERVED_WORDS_MASK) << 2, (tail - head) | 0);
    const limit = (this.#tailThen - head) | 0;
    let skip = RECORD_HEADER_BYTES;
    while (skip < limit && Atomics.load(ring.words, ((head + skip) & ring.mask) >> 2) === 0) skip += RECORD_HEADER_BYTES;
    return skip;
  }

  #report(stalls: readonly StalledReservation[]): void {
    const ring = this.#ring;
    for (const stall of stalls) {
      ring.bump('stalledReservations', 1);
      ring.bump('stalledBytes', stall.bytes);
      Atomics.store(ring.ctl, Slot.STALLED, stall.position);
    }
    if (this.#onStall !== undefined) for (const stall of stalls) this.#onStall(stall);
  }

  /** Milliseconds until the unpublished reservation at HEAD (if any) counts as stalled; Infinity if none. */
  #untilStall(): number {
    const ring = this.#ring;
    if (ring.usedBytes() === 0 || this.hasData()) return Infinity;
    const head = Atomics.load(ring.ctl, Slot.HEAD);
    if (this.#waitingSince < 0 || this.#waitingAt !== head) return this.#stallTimeoutMs;
    return Math.max(0, this.#waitingSince + this.#stallTimeoutMs - this.#clock());
  }

  #release(start: number, head: number, frames: number, payloadBytes: number): void {
    const ring = this.#ring;
    const from = start & ring.mask;
    const length = (head - start) | 0;
    // Zero before publishing HEAD: once HEAD moves, producers may reserve these bytes, and any
    // 4-byte boundary in them may become a record header that must read 0 until committed.
    if (from + length <= ring.capacity) {
      ring.bytes.fill(0, from, from + length);
    } else {
      ring.bytes.fill(0, from, ring.capacity);
      ring.bytes.fill(0, 0, from + length - ring.capacity);
    }
    Atomics.store(ring.ctl, Slot.HEAD, head);
    ring.bump('framesRead', frames);
    ring.bump('bytesRead', payloadBytes);
    if (Atomics.load(ring.ctl, Slot.SPACE_WAITERS) > 0) {
      Atomics.add(ring.ctl, Slot.SPACE_SIGNAL, 1);
      Atomics.notify(ring.ctl, Slot.SPACE_SIGNAL);
    }
  }

  /**
   * Blocks this (worker) thread until a frame is published, the ring is nudged or closes, or
   * `timeoutMs` passes: spins briefly first, then parks with Atomics.wait. Returns true if data is
   * ready; false may also mean a nudge or a spurious wake, so callers loop.
   */
  waitForData(timeoutMs = Infinity, since?: number): boolean {
    const ring = this.#ring;
    // A nudge (see Ring.nudge) bumps DATA_SIGNAL without publishing data: it must end the wait too,
    // so that the caller can serve whatever the nudger posted (a control-plane message). `since`
    // is a {@link signal} snapshot taken before the caller last looked at its messages: a nudge
    // after that snapshot ends the wait at once instead of being slept through.
    const entry = since ?? Atomics.load(ring.ctl, Slot.DATA_SIGNAL);
    for (let i = 0; i < this.#spin; i++) {
      if (this.hasData() || Atomics.load(ring.ctl, Slot.DATA_SIGNAL) !== entry) return this.hasData();
    }
    const signal = Atomics.load(ring.ctl, Slot.DATA_SIGNAL);
    Atomics.store(ring.ctl, Slot.PARKED, 1);
    if (signal !== entry || this.hasData() || ring.isClosed() || timeoutMs <= 0) {
      Atomics.store(ring.ctl, Slot.PARKED, 0);
      return this.hasData();
    }
    // Parked behind an unpublished reservation: wake in time to skip it if its producer died.
    const wait = Math.min(timeoutMs, this.#untilStall());
    Atomics.wait(ring.ctl, Slot.DATA_SIGNAL, signal, wait === Infinity ? undefined : wait);
    Atomics.store(ring.ctl, Slot.PARKED, 0);
    return this.hasData();
  }

  /**
   * The main-thread form of {@link waitForData}: never blocks; resolves true when data is ready,
   * false on timeout or close. Uses Atomics.waitAsync with a bounded fallback poll.
   */
  async waitForDataAsync(timeoutMs = Infinity): Promise<boolean> {
    const ring = this.#ring;
    if (this.hasData()) return true;
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const signal = Atomics.load(ring.ctl, Slot.DATA_SIGNAL);
      Atomics.store(ring.ctl, Slot.PARKED, 1);
      if (this.hasData() || ring.isClosed()) break;
      const left = Math.min(deadline - performance.now(), this.#untilStall());
      if (left <= 0) break;
      await waitOnMainThread(ring.ctl, Slot.DATA_SIGNAL, signal, left);
      if (this.hasData() || ring.isClosed()) break;
    }
    Atomics.store(ring.ctl, Slot.PARKED, 0);
    return this.hasData();
  }
}

/** Total record bytes of `frames`, without padding. */
function recordBytes(frames: readonly Uint8Array[]): number {
  let size = 0;
  for (let i = 0; i < frames.length; i++) size += align(RECORD_HEADER_BYTES + frames[i]!.length);
  return size;
}

/** Bytes a reservation of `frames` takes from data-area index `index`, padding where a record would straddle the end. */
function reservationBytes(frames: readonly Uint8Array[], index: number, capacity: number, size: number): number {
  if (size <= capacity - index) return size;
  let at = index;
  let needed = 0;
  for (let i = 0; i < frames.length; i++) {
    const record = align(RECORD_HEADER_BYTES + frames[i]!.length);
    if (at + record > capacity) {
      needed += capacity - at;
      at = 0;
    }
    needed += record;
    at = (at + record) & (capacity - 1);
  }
  return needed;
}

/**
 * Reserves and publishes `frames` as one reservation if there is room now. Never waits. `pending`:
 * the write is counted in PENDING, and leaves it right after reserving, before publishing.
 */
function tryWriteFrames(ring: Ring, frames: readonly Uint8Array[], pending: boolean): boolean {
  const { ctl, mask, capacity } = ring;
  const size = recordBytes(frames);
  for (;;) {
    const tail = Atomics.load(ctl, Slot.TAIL);
    const head = Atomics.load(ctl, Slot.HEAD);
    const index = tail & mask;
    const needed = reservationBytes(frames, index, capacity, size);
    if (((tail - head) | 0) + needed > capacity) return false;
    if (Atomics.compareExchange(ctl, Slot.TAIL, tail, (tail + needed) | 0) !== tail) continue;
    // Mark it with its size first, so a consumer can skip it should this thread die now.
    Atomics.store(ring.words, index >> 2, RESERVED | (needed >>> 2));
    if (pending) Atomics.sub(ctl, Slot.PENDING, 1);
    publish(ring, frames, index, tail);
    ring.bump('framesWritten', frames.length);
    ring.bump('bytesWritten', payloadSize(frames));
    wakeConsumer(ring);
    return true;
  }
}

/** Header positions and values of one reservation, reused (publish is synchronous). */
const headerAt: number[] = [];
const headerValue: number[] = [];

/**
 * Copies the payloads, then stores the headers last to first: the reservation's first word (its
 * RESERVED mark until now) last, so the consumer sees the whole reservation at once.
 */
function publish(ring: Ring, frames: readonly Uint8Array[], index: number, tail: number): void {
  const { bytes, words, capacity } = ring;
  checkNotSkipped(ring, tail);
  let at = index;
  let n = 0;
  for (let i = 0; i < frames.length; i++) {
    const frame = frames[i]!;
    const record = align(RECORD_HEADER_BYTES + frame.length);
    if (at + record > capacity) {
      headerAt[n] = at;
      headerValue[n++] = -(capacity - at);
      at = 0;
    }
    bytes.set(frame, at + RECORD_HEADER_BYTES);
    headerAt[n] = at;
    headerValue[n++] = frame.length;
    at = (at + record) & (capacity - 1);
  }
  checkNotSkipped(ring, tail);
  for (let i = n - 1; i >= 0; i--) Atomics.store(words, headerAt[i]! >> 2, headerValue[i]!);
}

/**
 * Splits a batch into reservations of at most half the data area. A padded reservation needs
 * `toEnd + size` bytes, so only a reservation no larger than half the ring is guaranteed to fit
 * once the ring is empty, wherever TAIL stands; larger ones could wait forever.
 */
function chunkFrames(ring: Ring, frames: readonly Uint8Array[]): (readonly Uint8Array[])[] {
  const limit = ring.capacity / 2;
  let total = 0;
  for (const frame of frames) total += align(RECORD_HEADER_BYTES + frame.length);
  if (total <= limit) return [frames];
  const chunks: Uint8Array[][] = [];
  let current: Uint8Array[] = [];
  let size = 0;
  for (const frame of frames) {
    const record = align(RECORD_HEADER_BYTES + frame.length);
    if (size + record > limit && current.length > 0) {
      chunks.push(current);
      current = [];
      size = 0;
    }
    current.push(frame);
    size += record;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/**
 * A consumer that took this producer for dead has skipped (and zeroed) its reservation: copying or
 * publishing now would write into space that may be someone else's.
 */
function checkNotSkipped(ring: Ring, tail: number): void {
  if (((Atomics.load(ring.ctl, Slot.HEAD) - tail) | 0) > 0) {
    throw new TimeoutError('ring reservation expired: the consumer skipped it as stalled before it was published (stallTimeoutMs)');
  }
}

function wakeConsumer(ring: Ring): void {
  if (Atomics.load(ring.ctl, Slot.PARKED) === 1 && Atomics.compareExchange(ring.ctl, Slot.PARKED, 1, 0) === 1) {
    Atomics.add(ring.ctl, Slot.DATA_SIGNAL, 1);
    Atomics.notify(ring.ctl, Slot.DATA_SIGNAL);
    ring.bump('wakes', 1);
  }
}

function ignore(): void {}

function payloadSize(frames: readonly Uint8Array[]): number {
  let n = 0;
  for (const frame of frames) n += frame.length;
  return n;
}

function checkSizes(ring: Ring, frames: readonly Uint8Array[]): void {
  for (const frame of frames) {
    if (frame.length === 0) throw new ValidationError('frame', 'must not be empty');
    if (frame.length > ring.maxFrameBytes) throw new FrameTooLargeError(frame.length, ring.maxFrameBytes);
  }
}

function fullError(ring: Ring, frames: readonly Uint8Array[]): RingFullError {
  ring.bump('fullRejects', 1);
  let size = 0;
  for (const frame of frames) size += align(RECORD_HEADER_BYTES + frame.length);
  return new RingFullError(size, ring.capacity - ring.usedBytes());
}

/** Waits on a futex word without blocking the event loop: Atomics.waitAsync, bounded by a fallback. */
async function waitOnMainThread(ctl: Int32Array, slot: number, expected: number, timeoutMs = MAIN_THREAD_WAIT_FALLBACK_MS): Promise<void> {
  const bound = Math.min(timeoutMs, MAIN_THREAD_WAIT_FALLBACK_MS);
  const result = Atomics.waitAsync(ctl, slot, expected, bound);
  if (result.async) await result.value;
}
