/**
 * What `converge storm` (src/main/storm.ts) and its threads (src/workers/storm.worker.ts) exchange:
 * the workerData of each role, the control block they start on, and the messages they report.
 */

/** Int32 slots of the storm's control SharedArrayBuffer. */
export const StormSlot = {
  /** 0 until the main thread releases every thread at once (Atomics.notify). */
  GO: 0,
} as const;
/** Size of the control SharedArrayBuffer. */
export const STORM_CONTROL_BYTES = 16;

/** A producer thread: writes `events` events in frames of `batch` into the ring. */
export interface StormProducerData {
  role: 'producer';
  ring: SharedArrayBuffer;
  control: SharedArrayBuffer;
  /** Producer number: selects its slice of the deterministic event stream. */
  producer: number;
  events: number;
  batch: number;
}

/** The consumer thread: drains and decodes until it has seen `events` events. */
export interface StormConsumerData {
  role: 'consumer';
  ring: SharedArrayBuffer;
  control: SharedArrayBuffer;
  events: number;
  /** Give up (and report what it saw) after this long without finishing. */
  timeoutMs: number;
}

export type StormWorkerData = StormProducerData | StormConsumerData;

/** Messages from storm threads. Times are process.hrtime nanoseconds (one clock for all threads). */
export type StormMessage =
  | { type: 'ready' }
  | { type: 'produced'; producer: number; events: number; checksum: number; endNs: number }
  | { type: 'consumed'; events: number; frames: number; checksum: number; endNs: number };
