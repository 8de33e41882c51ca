/**
 * A lock-free multi-producer, single-consumer ring of variable-length byte frames over a
 * SharedArrayBuffer. Layout and sentinels: see `ring-layout.ts`.
 *
 * Protocol (all Atomics operations are sequentially consistent):
 *  1. A producer reserves `align4(4 + len)` bytes by CAS on TAIL (plus padding to the end of the
 *     data area when the record would straddle it). A reservation is visible to everyone at once:
 *     `HEAD !== TAIL` means "not empty", which is what quiescence relies on.
 *  2. It copies the payload, then publishes the record by storing its length in the header.
 *  3. The consumer reads headers from HEAD; a 0 header means the next record is reserved but not yet
 *     published, so it stops there (records are consumed strictly in reservation order). It zeroes
 *     what it consumed, then stores the new HEAD, then wakes producers waiting for space.
 *
 * Parking: the consumer sets PARKED, re-checks for data, and only then sleeps on DATA_SIGNAL; a
 * producer publishes first and reads PARKED second. Because both sides write-then-read with
 * sequentially consistent atomics, at least one of them sees the other, so a wake is never lost,
 * and a producer wakes the consumer once per batch only when it is actually parked.
 */
import { ClosedError, FrameTooLargeError, RingFullError, ValidationError } from './errors.js';
import {
  COUNTER,
  CONTROL_BYTES,
  DEFAULT_RING_BYTES,
  DEFAULT_SPIN_ITERATIONS,
  MAIN_THREAD_WAIT_FALLBACK_MS,
  MAX_RING_BYTES,
  MIN_RING_BYTES,
  RECORD_HEADER_BYTES,
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
   * 'wait'), without ever blocking this thread. With onFull 'throw' a full ring throws RingFullError.
   * The frames are counted as pending for quiescence from this call on.
   */
  write(frames: Uint8Array | readonly Uint8Array[]): Promise<void> | undefined {
    const list = frames instanceof Uint8Array ? [frames] : frames;
    if (list.length === 0) return undefined;
    checkSizes(this.#ring, list);
    if (this.#ring.isClosed()) throw new ClosedError('ring');
    const chunks = chunkFrames(this.#ring, list);
    let written = 0;
    if (this.#queue.length === 0) {
      while (written < chunks.length && tryWriteFrames(this.#ring, chunks[written]!)) written++;
      if (written === chunks.length) return undefined;
    }
    if (this.#onFull === 'throw') throw fullError(this.#ring, chunks[written]!);
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
    const chunks = chunkFrames(ring, list);
    if (chunks.length > 1) {
      // Written in order; a timeout part-way leaves the earlier chunks written (reported as false).
      for (const chunk of chunks) if (!this.writeSync(chunk, timeoutMs)) return false;
      return true;
    }
    if (tryWriteFrames(ring, list)) return true;
    if (this.#onFull === 'throw') throw fullError(ring, list);
    const deadline = performance.now() + timeoutMs;
    Atomics.add(ring.ctl, Slot.PENDING, 1);
    Atomics.add(ring.ctl, Slot.SPACE_WAITERS, 1);
    ring.bump('fullWaits', 1);
    try {
      for (;;) {
        if (ring.isClosed()) throw new ClosedError('ring');
        const signal = Atomics.load(ring.ctl, Slot.SPACE_SIGNAL);
        if (tryWriteFrames(ring, list)) return true;
        const left = deadline - performance.now();
        if (left <= 0) return false;
        Atomics.wait(ring.ctl, Slot.SPACE_SIGNAL, signal, Math.min(left, 1_000));
      }
    } finally {
      Atomics.sub(ring.ctl, Slot.SPACE_WAITERS, 1);
      Atomics.sub(ring.ctl, Slot.PENDING, 1);
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
        if (tryWriteFrames(ring, next.frames)) {
          this.#queue.shift();
          Atomics.sub(ring.ctl, Slot.PENDING, 1);
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

/** Options of a {@link RingConsumer}. */
export interface RingConsumerOptions {
  spinIterations?: number;
}

/** The ring's single consumer. Create exactly one per ring, on the thread that drains it. */
export class RingConsumer {
  readonly #ring: Ring;
  readonly #spin: number;

  constructor(ring: Ring, options: RingConsumerOptions = {}) {
    this.#ring = ring;
    this.#spin = options.spinIterations ?? DEFAULT_SPIN_ITERATIONS;
  }

  get ring(): Ring {
    return this.#ring;
  }

  /** The current value of the wake signal; pass it to {@link waitForData} as `since`. */
  signal(): number {
    return Atomics.load(this.#ring.ctl, Slot.DATA_SIGNAL);
  }

  /** True if a published frame is waiting at HEAD. */
  hasData(): boolean {
    const ring = this.#ring;
    const head = Atomics.load(ring.ctl, Slot.HEAD);
    return Atomics.load(ring.words, (head & ring.mask) >> 2) !== 0;
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
    try {
      // Never read more than one lap: the bytes consumed in this drain are zeroed only on release,
      // so after a completely full ring the next header position still holds the first record.
      while (frames < maxFrames && ((head - start) | 0) < capacity) {
        const index = head & mask;
        const header = Atomics.load(words, index >> 2);
        if (header === 0) break;
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
    }
    return frames;
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
    Atomics.wait(ring.ctl, Slot.DATA_SIGNAL, signal, timeoutMs === Infinity ? undefined : timeoutMs);
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
      const left = deadline - performance.now();
      if (left <= 0) break;
      await waitOnMainThread(ring.ctl, Slot.DATA_SIGNAL, signal, left);
      if (this.hasData() || ring.isClosed()) break;
    }
    Atomics.store(ring.ctl, Slot.PARKED, 0);
    return this.hasData();
  }
}

/** Reserves and publishes `frames` contiguously if there is room now. Never waits. */
function tryWriteFrames(ring: Ring, frames: readonly Uint8Array[]): boolean {
  const { ctl, mask, capacity } = ring;
  let size = 0;
  for (const frame of frames) size += align(RECORD_HEADER_BYTES + frame.length);
  for (;;) {
    const tail = Atomics.load(ctl, Slot.TAIL);
    const head = Atomics.load(ctl, Slot.HEAD);
    const index = tail & mask;
    const toEnd = capacity - index;
    // A reservation never straddles the end of the data area: if it would, pad to the end first.
    const needed = size <= toEnd ? size : toEnd + size;
    if (((tail - head) | 0) + needed > capacity) return false;
    if (Atomics.compareExchange(ctl, Slot.TAIL, tail, (tail + needed) | 0) !== tail) continue;
    let at = index;
    if (size > toEnd) {
      Atomics.store(ring.words, index >> 2, -toEnd);
      at = 0;
    }
    publish(ring, frames, at);
    ring.bump('framesWritten', frames.length);
    ring.bump('bytesWritten', payloadSize(frames));
    wakeConsumer(ring);
    return true;
  }
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

function publish(ring: Ring, frames: readonly Uint8Array[], at: number): void {
  const { bytes, words } = ring;
  // Copy all payloads first, then publish headers in order; the first header is published last so
  // the consumer never sees the batch half-written (it stops at the first 0 header anyway).
  let offset = at;
  const headers: number[] = [];
  for (const frame of frames) {
    bytes.set(frame, offset + RECORD_HEADER_BYTES);
    headers.push(offset);
    offset += align(RECORD_HEADER_BYTES + frame.length);
  }
  for (let i = frames.length - 1; i >= 0; i--) Atomics.store(words, headers[i]! >> 2, frames[i]!.length);
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
