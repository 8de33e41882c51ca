/**
 * The one description of the ingest/dispatch ring's SharedArrayBuffer layout. Every slot index,
 * header byte and sentinel value used by `ring.ts` is defined here, nowhere else.
 *
 * ```
 *  SharedArrayBuffer
 *  ┌──────────────────────── control block: CONTROL_BYTES (Int32 slots) ───────────────────────┐
 *  │ [0] HEAD ........ consumer's read position        (own 64-byte line: only the consumer     │
 *  │ [2..9] framesRead, bytesRead, stalledReservations, stalledBytes counters  (consumer-only)   │
 *  │ [16] TAIL ....... producers' reserve position     (own line: producers CAS it)             │
 *  │ [32] DATA_SIGNAL  futex word the consumer parks on; bumped by a producer to wake it        │
 *  │ [33] PARKED ..... 1 while the consumer is (about to be) parked in Atomics.wait             │
 *  │ [34] SPACE_SIGNAL futex word full-ring producers park on; bumped by the consumer           │
 *  │ [35] SPACE_WAITERS number of producers waiting for space (the consumer notifies if > 0)    │
 *  │ [36] PENDING .... producers that accepted a frame but have not reserved it yet             │
 *  │ [38] STALLED .... position of an unpublished reservation the consumer has waited on past   │
 *  │                   the stall timeout and skipped most recently (diagnostics)                │
 *  │ [37] CLOSED ..... 1 once the ring is closed: waiters wake and give up                      │
 *  │ [48..59] producers' 64-bit counters as (lo, hi) Int32 pairs, see COUNTER                   │
 *  ├──────────────────────── data area: capacity bytes (a power of two) ───────────────────────┤
 *  │ … │ len │ payload (len bytes) │pad│ len │ payload … │ -n (padding to the end) │            │
 *  └────────────────────────────────────────────────────────────────────────────────────────────┘
 *        ▲ head                                      tail ▲
 * ```
 *
 * Positions are free-running Int32 byte counters (wrap at 2^32; only differences are used, and
 * `pos & (capacity - 1)` is the index). Every record starts on a 4-byte boundary with a 4-byte
 * header:
 *   - `> 0`: committed frame of that many payload bytes; the record occupies `align4(4 + len)`.
 *   - `< 0`: padding of `-value` bytes to the end of the data area (the next record starts at 0).
 *   - `0`  : not yet committed (reserved by a producer that is still copying) or never written.
 * The consumer zeroes every byte it consumed before it publishes the new HEAD, so any 4-byte
 * boundary a future record may start on reads 0 until that record is committed.
 */

/** Bytes before the data area. Large enough to keep HEAD and TAIL on separate cache lines. */
export const CONTROL_BYTES = 256;

/** Int32 slot indexes in the control block. */
export const Slot = {
  HEAD: 0,
  TAIL: 16,
  DATA_SIGNAL: 32,
  PARKED: 33,
  SPACE_SIGNAL: 34,
  SPACE_WAITERS: 35,
  PENDING: 36,
  CLOSED: 37,
  STALLED: 38,
} as const;

/** Header flag of an unpublished reservation (see the file comment); committed lengths stay below 2^29. */
export const RESERVED = 0x4000_0000;
/** The reservation size, in 4-byte words, held by a {@link RESERVED} header. */
export const RESERVED_WORDS_MASK = 0x0fff_ffff;

/** Default time a consumer waits on an unpublished reservation before it declares its producer dead. */
export const DEFAULT_STALL_TIMEOUT_MS = 5_000;

/**
 * Compares two values of a free-running Int32 counter (a ring position, a frame sequence number
 * stored in an Int32 slot) modulo 2^32: negative if `a` is before `b`, 0 if equal, positive if after.
 * Correct while the two are less than 2^31 apart, whatever the wrap; never compare such values with
 * `<` (after 2^31 increments the stored value turns negative).
 */
export function seqCompare(a: number, b: number): number {
  return (a - b) | 0;
}

/**
 * First Int32 slot of each 64-bit counter (lo word; hi word at +1). The consumer's counters share
 * HEAD's cache line and the producers' have their own: a consumer bumping its counters once per drain
 * must not keep stealing the line producers bump on every write (false sharing).
 */
export const COUNTER = {
  framesRead: 2,
  bytesRead: 4,
  stalledReservations: 6,
  stalledBytes: 8,
  framesWritten: 48,
  bytesWritten: 50,
  fullWaits: 52,
  wakes: 54,
  fullRejects: 56,
} as const;
export type RingCounterName = keyof typeof COUNTER;

/** Size of a record header in bytes. */
export const RECORD_HEADER_BYTES = 4;
/** Records are aligned to this many bytes so that headers are valid Int32 Atomics targets. */
export const RECORD_ALIGN = 4;

/** Smallest and default data-area sizes. */
export const MIN_RING_BYTES = 64;
export const DEFAULT_RING_BYTES = 8 * 1024 * 1024;
/** Largest data area: positions are Int32 counters, so differences must stay below 2^31. */
export const MAX_RING_BYTES = 1024 * 1024 * 1024;

/**
 * Consumer spin budget before parking. One OS wake costs ~45 µs on the project's machines while a
 * busy check costs nanoseconds, so a short spin catches the next batch of a busy producer without
 * paying for a sleep; the budget is small because the machines have two cores to share.
 */
export const DEFAULT_SPIN_ITERATIONS = 2_000;

/** Bounded fallback for Atomics.waitAsync on the main thread (it can miss a notify in Node). */
export const MAIN_THREAD_WAIT_FALLBACK_MS = 20;

/** Rounds `n` up to the record alignment. */
export function align(n: number): number {
  return (n + RECORD_ALIGN - 1) & ~(RECORD_ALIGN - 1);
}
