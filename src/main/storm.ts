/**
 * `converge storm`: an event storm through the lock-free ingest ring, on real threads. For each
 * scenario, producer threads write realistic page-change events in frames, one consumer thread
 * drains and decodes them, and the run reports throughput. Producer and consumer checksums must
 * agree, so a storm is also an end-to-end check that the data plane loses nothing.
 */
import type { Worker } from 'node:worker_threads';
import { z } from 'zod';
import { ConvergeError } from '../shared/errors.js';
import { Ring, ringCapacityFor } from '../shared/ring.js';
import { STORM_CONTROL_BYTES, StormSlot, type StormMessage, type StormWorkerData } from '../shared/storm-protocol.js';
import { parseInput } from '../shared/validation.js';
import { startWorker } from '../shared/worker-entry.js';

// Loaded by path (never imported): dist/workers/storm.worker.js, or its .ts source under tsx.
const STORM_WORKER = new URL('../workers/storm.worker.js', import.meta.url);

/** Options of {@link runStorm}; every field is optional. */
export interface StormOptions {
  /** Events per scenario. */
  events?: number;
  /** One scenario per entry: how many producer threads write concurrently. */
  producers?: readonly number[];
  /** Ring data-area size in bytes (rounded up to a power of two). */
  ringBytes?: number;
  /** Events per frame. */
  batch?: number;
  /** A scenario that has not finished after this long fails. */
  timeoutMs?: number;
}

/** {@link StormOptions} with every default filled in. */
export type ResolvedStormOptions = Required<StormOptions>;

/** Defaults: ~12 M events in all, a few seconds on a 2-core machine. */
export const STORM_DEFAULTS: Readonly<ResolvedStormOptions> = Object.freeze({
  events: 4_000_000,
  producers: Object.freeze([1, 2, 3]),
  ringBytes: 8 * 1024 * 1024,
  // The batch a busy convergence loop drains at once; one wake and one reservation per frame.
  batch: 256,
  timeoutMs: 120_000,
});

const StormOptionsSchema = z
  .object({
    events: z.number().int().min(1).max(1e10).optional(),
    producers: z.array(z.number().int().min(1).max(64)).min(1).optional(),
    ringBytes: z.number().int().optional(),
    batch: z.number().int().min(1).max(65_536).optional(),
    timeoutMs: z.number().positive().optional(),
  })
  .strict();

/** Validates and completes storm options; throws ValidationError naming the field. */
export function resolveStormOptions(options: StormOptions = {}): ResolvedStormOptions {
  const parsed = parseInput(StormOptionsSchema, options, 'options');
  const resolved = { ...STORM_DEFAULTS, ...parsed };
  ringCapacityFor(resolved.ringBytes, 'options.ringBytes');
  return resolved as ResolvedStormOptions;
}

/** One row of the storm's throughput table. */
export interface StormRow {
  producers: number;
  events: number;
  frames: number;
  seconds: number;
  eventsPerSecond: number;
  /** Frame payload through the ring, MB (10^6 bytes) per second. */
  megabytesPerSecond: number;
  bytesPerEvent: number;
  /** Times a producer found the ring full and waited for space. */
  fullWaits: number;
  /** Times a producer woke the parked consumer. */
  wakes: number;
}

/** Runs one scenario per entry of `options.producers` and returns a row for each. */
export async function runStorm(options: StormOptions = {}): Promise<StormRow[]> {
  const resolved = resolveStormOptions(options);
  const rows: StormRow[] = [];
  for (const producers of resolved.producers) rows.push(await runScenario(producers, resolved));
  return rows;
}

const now = (): number => Number(process.hrtime.bigint());

async function runScenario(producers: number, options: ResolvedStormOptions): Promise<StormRow> {
  const ringBuffer = Ring.allocate(options.ringBytes);
  const control = new SharedArrayBuffer(STORM_CONTROL_BYTES);
  const roles: StormWorkerData[] = [{ role: 'consumer', ring: ringBuffer, control, events: options.events, timeoutMs: options.timeoutMs }];
  for (let p = 0; p < producers; p++) {
    // Split the events evenly; the first producers take the remainder.
    const events = Math.floor(options.events / producers) + (p < options.events % producers ? 1 : 0);
    roles.push({ role: 'producer', ring: ringBuffer, control, producer: p, events, batch: options.batch });
  }
  const workers: Worker[] = [];
  try {
    const threads = roles.map((data) => {
      const worker = startWorker(STORM_WORKER, { workerData: data });
      workers.push(worker);
      return collect(worker, data.role === 'consumer' ? 'consumed' : 'produced');
    });
    await Promise.all(threads.map((t) => t.ready));
    const start = now();
    const ctl = new Int32Array(control);
    Atomics.store(ctl, StormSlot.GO, 1);
    Atomics.notify(ctl, StormSlot.GO);
    const [consumed, ...produced] = (await Promise.all(threads.map((t) => t.done))) as [
      Extract<StormMessage, { type: 'consumed' }>,
      ...Extract<StormMessage, { type: 'produced' }>[],
    ];
    const sent = produced.reduce((n, p) => n + p.events, 0);
    const checksum = produced.reduce((n, p) => n + p.checksum, 0);
    if (consumed.events !== sent || consumed.checksum !== checksum) {
      throw new ConvergeError(`storm lost data: producers sent ${sent} events (checksum ${checksum}), the consumer saw ${consumed.events} (checksum ${consumed.checksum})`);
    }
    const stats = new Ring(ringBuffer).stats();
    const seconds = (consumed.endNs - start) / 1e9;
    return {
      producers,
      events: consumed.events,
      frames: consumed.frames,
      seconds,
      eventsPerSecond: consumed.events / seconds,
      megabytesPerSecond: stats.bytesRead / 1e6 / seconds,
      bytesPerEvent: stats.bytesRead / consumed.events,
      fullWaits: stats.fullWaits,
      wakes: stats.wakes,
    };
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
}

/** The `ready` message of a storm thread and its final report, rejecting if the thread dies first. */
function collect(worker: Worker, doneType: 'consumed' | 'produced'): { ready: Promise<void>; done: Promise<StormMessage> } {
  let onReady!: () => void;
  let onDone!: (message: StormMessage) => void;
  let onFail!: (error: Error) => void;
  const failed = new Promise<never>((_, reject) => (onFail = reject));
  // Whichever of ready/done is awaited reports the failure; the other must not be unhandled.
  failed.catch(() => {});
  const ready = Promise.race([failed, new Promise<void>((resolve) => (onReady = resolve))]);
  const done = Promise.race([failed, new Promise<StormMessage>((resolve) => (onDone = resolve))]);
  worker.on('message', (message: StormMessage) => {
    if (message.type === 'ready') onReady();
    else if (message.type === doneType) onDone(message);
  });
  worker.once('error', (error) => onFail(error));
  worker.once('exit', (code) => onFail(new ConvergeError(`storm thread exited early with code ${code}`)));
  ready.catch(() => {});
  return { ready, done };
}
