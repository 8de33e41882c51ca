/**
 * The colony pool's shared task table: how pool threads *pull* work without a message per task.
 *
 * The main thread publishes a task into a slot (msgpack payload in the slot's bytes) and appends the
 * slot's index to the claim queue. Pool threads ("lanes") pop the queue by CAS on `HEAD` and then
 * claim the slot by CAS on its state (`PENDING → CLAIMED + lane`), so of any number of lanes racing
 * for one task exactly one wins, and a busy lane takes the next task the moment it finishes one, with
 * no wake-up and no `postMessage`. A lane writes the outcome into the same slot and appends the slot
 * to the completion queue, which the main thread drains.
 *
 * ```
 *  Int32 header (HEADER_INTS)  lane states (MAX_LANES)  claim queue (capacity)  done queue (capacity)
 *  ┌─────────────────────────┬───────────────────────┬──────────────────────┬─────────────────────┐
 *  │HEAD TAIL SEQ IDLE DHEAD │ 1 = lane running       │ slot indexes, FIFO   │ slot + 1, 0 = empty │
 *  │DTAIL PARKED ACTIVE …    │                        │ main writes at TAIL  │ lanes reserve DTAIL │
 *  └─────────────────────────┴───────────────────────┴──────────────────────┴─────────────────────┘
 *  slot meta (capacity × SLOT_INTS)           slot bytes (capacity × slotBytes)
 *  ┌───────┬─────┬───────┐                    ┌──────────────────────────────────────────────┐
 *  │ STATE │ LEN │ FLAGS │ …                  │ payload (main → lane), then result (lane → main)│
 *  └───────┴─────┴───────┘                    └──────────────────────────────────────────────┘
 * ```
 *
 * Neither queue can overflow: a slot is in the claim queue at most once and in the done queue at
 * most once between its allocation and its release, and there are `capacity` slots. Slots are
 * allocated and freed by the main thread only.
 */
import { addExtension, Packr } from 'msgpackr';
import { ValidationError } from './errors.js';

/** Int32 indexes of the header. */
export const TableSlot = {
  /** Claim queue: next entry to pop (lanes, CAS). */
  HEAD: 0,
  /** Claim queue: next entry to write (main thread only). */
  TAIL: 1,
  /** Bumped on every publish; idle lanes `Atomics.waitAsync` on it. */
  SEQ: 2,
  /** Lanes waiting on SEQ (the main thread notifies only when some are). */
  IDLE: 3,
  /** Done queue: next entry the main thread reads. */
  DONE_HEAD: 4,
  /** Done queue: next entry a lane reserves (Atomics.add). */
  DONE_TAIL: 5,
  /** 1 while the main thread waits for a wake-up message; a lane that CASes it 1 → 0 sends one. */
  MAIN_PARKED: 6,
  /** Lanes running (main increments when it starts one; a lane decrements when it retires). */
  ACTIVE: 7,
  /** 1 once the pool is closing: lanes stop claiming. */
  CLOSED: 8,
} as const;

const HEADER_INTS = 16;
/** Lane ids are below this. */
export const MAX_LANES = 64;

/** Int32 fields of a slot's meta. */
const SLOT_INTS = 4;
const META_STATE = 0;
/** Bytes of the payload or result in the slot's bytes; -1 when it did not fit (sent by message). */
const META_LEN = 1;
const META_FLAGS = 2;

/** Slot states. A claimed slot's state is `CLAIMED + lane`. */
export const SlotState = {
  FREE: 0,
  PENDING: 1,
  /** Cancelled by the main thread before any lane claimed it; still in the claim queue. */
  CANCELLED: 2,
  /** A cancelled slot a lane popped from the queue: the main thread may free it. */
  SKIPPED: 3,
  /** The task returned; the result is in the slot. */
  DONE: 4,
  /** The task threw; the serialized error is in the slot. */
  FAILED: 5,
  CLAIMED: 16,
} as const;

/** Slot flags (Atomics.or). */
export const SlotFlag = {
  /** The main thread asked the task to stop: `ctx.signal` aborts. */
  ABORT: 1,
  /** The main thread holds inbox messages for the task: the claiming lane asks for them. */
  INBOX: 2,
} as const;

/** Sizing of a table. */
export interface TaskTableSize {
  readonly capacity: number;
  readonly slotBytes: number;
}

/** Encoder for payloads and results (no records: both sides must decode without shared state). */
const packr = new Packr({ useRecords: false, moreTypes: true, structuredClone: false });

/**
 * msgpackr writes -0 as the integer 0, so a task's event, input or result would arrive changed.
 * A -0 is therefore packed as this placeholder, an extension whose unpacking gives -0 back.
 */
class NegativeZero {}
const NEGATIVE_ZERO = new NegativeZero();
/** msgpack extension type of -0 (1–100 are free for applications; msgpackr uses 101–127). */
const NEGATIVE_ZERO_EXT = 0x2d;
addExtension({ Class: NegativeZero, type: NEGATIVE_ZERO_EXT, pack: () => Buffer.alloc(0), unpack: () => -0 });

/** Nesting followed when scanning a payload (payloads are plain data; deeper is left to msgpackr). */
const MAX_ZERO_DEPTH = 256;

/** What a scan of a payload found: a -0 to mark, or a value msgpackr would change or refuse. */
interface Scan {
  negativeZero: boolean;
  problem: { path: string; message: string } | undefined;
}

/** Why msgpackr cannot carry `value` unchanged (functions vanish, a Map comes back as an object), or undefined. */
function untransferable(value: unknown): string | undefined {
  if (typeof value === 'function') return 'is a function, which cannot be sent to a pool thread';
  if (typeof value === 'symbol') return 'is a symbol, which cannot be sent to a pool thread';
  if (value instanceof Map) return 'is a Map, which would arrive as a plain object: send an object or an array of entries';
  if (value instanceof WeakMap || value instanceof WeakSet || value instanceof Promise) return `is a ${(value as object).constructor.name}, which cannot be sent to a pool thread`;
  return undefined;
}

/**
 * Walks the plain objects and arrays of `value` (up to {@link MAX_ZERO_DEPTH}): notes a -0 (which
 * msgpackr would write as 0) and stops at the first value it would drop, alter or refuse.
 */
function scan(value: unknown, path: string, depth: number, out: Scan): void {
  if (typeof value === 'number') {
    if (value === 0 && 1 / value < 0) out.negativeZero = true;
    return;
  }
  const problem = untransferable(value);
  if (problem !== undefined) {
    out.problem = { path, message: problem };
    return;
  }
  if (value === null || typeof value !== 'object' || depth > MAX_ZERO_DEPTH) return;
  if (Array.isArray(value)) {
    const list = value as unknown[];
    for (let i = 0; i < list.length && out.problem === undefined; i++) scan(list[i], `${path}[${i}]`, depth + 1, out);
    return;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return;
  for (const key in value) {
    scan((value as Record<string, unknown>)[key], path === '' ? key : `${path}.${key}`, depth + 1, out);
    if (out.problem !== undefined) return;
  }
}

/**
 * Why `value` cannot travel to or from a pool thread unchanged (`path` names where, under `field`),
 * or undefined. Callers that take user data (a colony worker's input) check it up front.
 */
export function transferProblem(value: unknown, field: string): { path: string; message: string } | undefined {
  const out: Scan = { negativeZero: false, problem: undefined };
  scan(value, field, 0, out);
  return out.problem;
}

/** A copy of `value` with every -0 (in plain objects and arrays) replaced by the placeholder. */
function markNegativeZeros(value: unknown, depth: number): unknown {
  if (typeof value === 'number') return value === 0 && 1 / value < 0 ? NEGATIVE_ZERO : value;
  if (value === null || typeof value !== 'object' || depth > MAX_ZERO_DEPTH) return value;
  if (Array.isArray(value)) return (value as unknown[]).map((item) => markNegativeZeros(item, depth + 1));
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = proto === null ? (Object.create(null) as Record<string, unknown>) : {};
  for (const key in value) out[key] = markNegativeZeros((value as Record<string, unknown>)[key], depth + 1);
  return out;
}

/**
 * Packs and unpacks payloads and results of the table: msgpackr with `moreTypes`, except that -0
 * stays -0 (the common value, with none, is packed as it is, without a copy) and a value msgpackr
 * would silently drop or change (a function, a Map) is refused with a ValidationError naming it.
 */
export const tablePackr = {
  pack(value: unknown): Uint8Array {
    const out: Scan = { negativeZero: false, problem: undefined };
    scan(value, '', 0, out);
    if (out.problem !== undefined) throw new ValidationError(out.problem.path, out.problem.message);
    return packr.pack(out.negativeZero ? markNegativeZeros(value, 0) : value);
  },
  unpack(bytes: Uint8Array): unknown {
    return packr.unpack(bytes) as unknown;
  },
};

/** A view of the table; the same class serves the main thread and the lanes. */
export class TaskTable {
  readonly buffer: SharedArrayBuffer;
  readonly i32: Int32Array;
  readonly capacity: number;
  readonly slotBytes: number;
  readonly #bytes: Uint8Array;
  readonly #queue: number;
  readonly #done: number;
  readonly #meta: number;
  readonly #data: number;

  static create(size: TaskTableSize): TaskTable {
    const ints = HEADER_INTS + MAX_LANES + size.capacity * (2 + SLOT_INTS);
    const buffer = new SharedArrayBuffer(ints * 4 + size.capacity * size.slotBytes + 8);
    const i32 = new Int32Array(buffer, 0, 2);
    i32[0] = size.capacity;
    i32[1] = size.slotBytes;
    return new TaskTable(buffer);
  }

  constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    const sizes = new Int32Array(buffer, 0, 2);
    this.capacity = sizes[0]!;
    this.slotBytes = sizes[1]!;
    const ints = HEADER_INTS + MAX_LANES + this.capacity * (2 + SLOT_INTS);
    this.i32 = new Int32Array(buffer, 8, ints);
    this.#queue = HEADER_INTS + MAX_LANES;
    this.#done = this.#queue + this.capacity;
    this.#meta = this.#done + this.capacity;
    this.#data = 8 + ints * 4;
    this.#bytes = new Uint8Array(buffer, this.#data, this.capacity * this.slotBytes);
  }

  state(slot: number): number {
    return Atomics.load(this.i32, this.#meta + slot * SLOT_INTS + META_STATE);
  }

  flags(slot: number): number {
    return Atomics.load(this.i32, this.#meta + slot * SLOT_INTS + META_FLAGS);
  }

  setFlag(slot: number, flag: number): void {
    Atomics.or(this.i32, this.#meta + slot * SLOT_INTS + META_FLAGS, flag);
  }

  /** Writes `value` into the slot's bytes; false (nothing written, LEN = -1) when it does not fit. */
  write(slot: number, value: unknown): boolean {
    return this.writeBytes(slot, tablePackr.pack(value));
  }

  writeBytes(slot: number, bytes: Uint8Array): boolean {
    const len = this.#meta + slot * SLOT_INTS + META_LEN;
    if (bytes.length > this.slotBytes) {
      Atomics.store(this.i32, len, -1);
      return false;
    }
    this.#bytes.set(bytes, slot * this.slotBytes);
    Atomics.store(this.i32, len, bytes.length);
    return true;
  }

  /** The slot's payload or result; `undefined` when it was too large for the slot (LEN = -1). */
  read(slot: number): { value: unknown } | undefined {
    const n = Atomics.load(this.i32, this.#meta + slot * SLOT_INTS + META_LEN);
    if (n < 0) return undefined;
    const start = slot * this.slotBytes;
    // Copied out: TextDecoder refuses views of shared memory, and the slot is reused afterwards.
    return { value: tablePackr.unpack(this.#bytes.slice(start, start + n)) };
  }

  // ── main thread ──────────────────────────────────────────────────────────

  /** Marks `slot` pending (its payload already written) and appends it to the claim queue; see {@link announce}. */
  publish(slot: number): void {
    const i = this.i32;
    Atomics.store(i, this.#meta + slot * SLOT_INTS + META_FLAGS, 0);
    Atomics.store(i, this.#meta + slot * SLOT_INTS + META_STATE, SlotState.PENDING);
    const tail = Atomics.load(i, TableSlot.TAIL);
    Atomics.store(i, this.#queue + (tail % this.capacity), slot);
    Atomics.store(i, TableSlot.TAIL, tail + 1);
  }

  /**
   * After one or more {@link publish}es: bumps SEQ and wakes up to `count` parked lanes. One call per
   * batch, because `Atomics.notify` takes a lock and a system call; only when some lane is parked.
   */
  announce(count: number): void {
    const i = this.i32;
    Atomics.add(i, TableSlot.SEQ, 1);
    if (Atomics.load(i, TableSlot.IDLE) > 0) Atomics.notify(i, TableSlot.SEQ, count);
  }

  /** PENDING → CANCELLED. False when a lane claimed it first. */
  cancel(slot: number): boolean {
    return Atomics.compareExchange(this.i32, this.#meta + slot * SLOT_INTS + META_STATE, SlotState.PENDING, SlotState.CANCELLED) === SlotState.PENDING;
  }

  /** Back to FREE (main thread, after it consumed the outcome). */
  free(slot: number): void {
    Atomics.store(this.i32, this.#meta + slot * SLOT_INTS + META_STATE, SlotState.FREE);
  }

  /** Pops the next completed slot, or -1. */
  popDone(): number {
    const i = this.i32;
    const head = Atomics.load(i, TableSlot.DONE_HEAD);
    const at = this.#done + (head % this.capacity);
    const entry = Atomics.load(i, at);
    if (entry === 0) return -1;
    Atomics.store(i, at, 0);
    Atomics.store(i, TableSlot.DONE_HEAD, head + 1);
    return entry - 1;
  }

  hasDone(): boolean {
    return Atomics.load(this.i32, this.#done + (Atomics.load(this.i32, TableSlot.DONE_HEAD) % this.capacity)) !== 0;
  }

  /** Marks a lane as started (before the thread runs it). */
  startLane(lane: number): void {
    Atomics.store(this.i32, HEADER_INTS + lane, 1);
    Atomics.add(this.i32, TableSlot.ACTIVE, 1);
  }

  /** The lane ended without retiring (it crashed): take it off the active count, once. */
  dropLane(lane: number): void {
    if (Atomics.compareExchange(this.i32, HEADER_INTS + lane, 1, 0) === 1) Atomics.sub(this.i32, TableSlot.ACTIVE, 1);
  }

  activeLanes(): number {
    return Atomics.load(this.i32, TableSlot.ACTIVE);
  }

  close(): void {
    Atomics.store(this.i32, TableSlot.CLOSED, 1);
    Atomics.add(this.i32, TableSlot.SEQ, 1);
    Atomics.notify(this.i32, TableSlot.SEQ);
  }

  // ── lanes ────────────────────────────────────────────────────────────────

  closed(): boolean {
    return Atomics.load(this.i32, TableSlot.CLOSED) === 1;
  }

  hasPending(): boolean {
    return Atomics.load(this.i32, TableSlot.HEAD) !== Atomics.load(this.i32, TableSlot.TAIL);
  }

  /**
   * Claims the oldest pending task for `lane`: its slot, or -1 when the queue is empty. A cancelled
   * slot popped here is handed back to the main thread (SKIPPED) and the next one is tried.
   */
  claim(lane: number): number {
    const i = this.i32;
    for (;;) {
      const head = Atomics.load(i, TableSlot.HEAD);
      if (head === Atomics.load(i, TableSlot.TAIL)) return -1;
      const slot = Atomics.load(i, this.#queue + (head % this.capacity));
      // Whoever moves HEAD past this entry owns it; losers retry with the new head.
      if (Atomics.compareExchange(i, TableSlot.HEAD, head, head + 1) !== head) continue;
      const state = this.#meta + slot * SLOT_INTS + META_STATE;
      const before = Atomics.compareExchange(i, state, SlotState.PENDING, SlotState.CLAIMED + lane);
      if (before === SlotState.PENDING) return slot;
      if (before === SlotState.CANCELLED && Atomics.compareExchange(i, state, SlotState.CANCELLED, SlotState.SKIPPED) === SlotState.CANCELLED) {
        this.pushDone(slot);
      }
    }
  }

  /** Records the outcome (already written) and queues the slot for the main thread. */
  complete(slot: number, state: typeof SlotState.DONE | typeof SlotState.FAILED): void {
    Atomics.store(this.i32, this.#meta + slot * SLOT_INTS + META_STATE, state);
    this.pushDone(slot);
  }

  /** Sets the outcome state without queueing the slot (its completion travels by port message). */
  setState(slot: number, state: typeof SlotState.DONE | typeof SlotState.FAILED): void {
    Atomics.store(this.i32, this.#meta + slot * SLOT_INTS + META_STATE, state);
  }

  pushDone(slot: number): void {
    const at = Atomics.add(this.i32, TableSlot.DONE_TAIL, 1);
    Atomics.store(this.i32, this.#done + (at % this.capacity), slot + 1);
  }

  /** True when the main thread was parked and this caller must wake it (exactly one caller wins). */
  takeMainWake(): boolean {
    return Atomics.load(this.i32, TableSlot.MAIN_PARKED) === 1 && Atomics.compareExchange(this.i32, TableSlot.MAIN_PARKED, 1, 0) === 1;
  }

  /**
   * A lane with nothing to do leaves the active count. Returns false — and stays active — when work
   * arrived meanwhile: the main thread appends before it reads ACTIVE, and we decrement before we
   * look at the queue, so either it starts a new lane or we see its task.
   */
  retire(lane: number): boolean {
    const i = this.i32;
    if (Atomics.compareExchange(i, HEADER_INTS + lane, 1, 0) !== 1) return true;
    Atomics.sub(i, TableSlot.ACTIVE, 1);
    if (!this.hasPending() || this.closed()) return true;
    Atomics.store(i, HEADER_INTS + lane, 1);
    Atomics.add(i, TableSlot.ACTIVE, 1);
    return false;
  }
}
