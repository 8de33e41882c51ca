/**
 * The convergence worker's loop: drain the ingest ring in batches, hand frames to the runtime,
 * write dispatch batches to the main thread, park when idle.
 *
 * Backpressure: with a dedicated ack ring (`data.acks`) and `data.maxInFlight`, acknowledgements
 * (and derived events, see protocol.ts) are drained before every ingest frame, and ingest frames are
 * taken one at a time while fewer than `maxInFlight` dispatches are unacknowledged. Past the bound
 * the worker reads the ack ring only: the ingest ring fills and its producers wait, while the acks
 * that lift the bound — and the derived writes the handlers holding it await — still get through.
 *
 * The thread must also serve Comlink queries, which arrive as MessagePort messages and so need the
 * event loop. It therefore parks in Atomics.wait (cheap, precise wake by producers) and, after
 * every wake, yields one macrotask so queued port messages run; the main thread nudges the ring's
 * data signal after posting a query so a parked worker wakes for it.
 */
import { expose } from 'comlink';
import { type MessagePort } from 'node:worker_threads';
import { serializeError } from '../shared/errors.js';
import { type EventTuple, FrameDecoder, FrameEncoder, packDispatchGroups } from '../shared/framing.js';
import { type ConvergenceControl, type ConvergenceWorkerData, type DispatchFrame, DispatchTag, MainSlot, type WorkerMessage } from '../shared/protocol.js';
import { Ring, RingConsumer, RingProducer, type StalledReservation } from '../shared/ring.js';
import { nodeEndpoint } from '../shared/endpoint.js';
import { ConvergenceRuntime } from './convergence-runtime.js';

/** Frames handled per drain before the loop flushes dispatches and checks timers. */
const FRAMES_PER_DRAIN = 256;
/** While busy, yield to the event loop at least this often so Comlink queries are answered. */
const BUSY_YIELD_INTERVAL_MS = 5;
/** Longest park when nothing is scheduled; a safety net only (producers and queries wake us). */
const IDLE_PARK_MS = 1_000;
/**
 * The convergence worker owns a core of its own, so it spins longer before parking than the ring's
 * default: a main thread encoding 1000-event batches publishes one every ~0.5–1 ms, and catching the
 * next one while spinning saves a ~45 µs wake (measured) per batch.
 */
const CONSUMER_SPIN_ITERATIONS = 20_000;
/** Dispatch groups per dispatch frame, so one frame stays far below the ring's frame limit. */
const GROUPS_PER_FRAME = 512;
/**
 * Longest park while blocked by `maxInFlight`. The worker then parks on the ack ring (acks wake it);
 * a Comlink query nudges the ingest ring instead, so this bounds how long such a query waits.
 */
const BLOCKED_PARK_MS = 20;

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Runs the convergence worker until a CLOSE frame or a fatal error. */
export async function runConvergenceWorker(data: ConvergenceWorkerData, port: MessagePort): Promise<void> {
  const ingestRing = new Ring(data.ingest);
  // A producer that died mid-write: its reservation is skipped (see RingConsumerOptions) and reported.
  const onStall = (ring: 'ingest' | 'acks') => (stall: StalledReservation) => post({ type: 'ring-stalled', ring, ...stall });
  const stallTimeoutMs = data.stallTimeoutMs;
  const consumer = new RingConsumer(ingestRing, { spinIterations: CONSUMER_SPIN_ITERATIONS, stallTimeoutMs, onStall: onStall('ingest') });
  const dispatchRing = new Ring(data.dispatch);
  const ackRing = data.acks === undefined ? undefined : new Ring(data.acks);
  const dispatchProducer = new RingProducer(dispatchRing, { onFull: 'wait' });
  const mainFlags = new Int32Array(data.main);
  const decoder = new FrameDecoder();
  const encoder = new FrameEncoder();
  const post = (message: WorkerMessage): void => port.postMessage(message);

  // Wake the main thread only if it said it is waiting (it re-checks the ring after saying so). It
  // waits on MainSlot.WAKE with Atomics.waitAsync: a notify, not a MessagePort message per wake.
  const wakeMain = (): void => {
    if (Atomics.exchange(mainFlags, MainSlot.PARKED, 0) === 1) {
      Atomics.add(mainFlags, MainSlot.WAKE, 1);
      Atomics.notify(mainFlags, MainSlot.WAKE);
    }
  };

  /** Writes groups as one frame, halving the batch while the frame is over the ring's limit. */
  const writeDispatches = (episodeId: string, firstId: number, groups: [EventTuple | number, number[]][]): number => {
    const packed = packDispatchGroups(groups);
    const dispatchFrame: DispatchFrame = [DispatchTag.DISPATCH, episodeId, firstId, packed.groups, packed.events];
    const frame = encoder.encodeDispatch(dispatchFrame);
    if (frame.length > dispatchRing.maxFrameBytes) {
      if (groups.length > 1) {
        const half = groups.length >> 1;
        return writeDispatches(episodeId, writeDispatches(episodeId, firstId, groups.slice(0, half)), groups.slice(half));
      }
      const [event, handles] = groups[0]!;
      if (handles.length > 1) {
        const half = handles.length >> 1;
        const next = writeDispatches(episodeId, firstId, [[event, handles.slice(0, half)]]);
        return writeDispatches(episodeId, next, [[event, handles.slice(half)]]);
      }
      // A single dispatch cannot be split: writeSync throws FrameTooLargeError, which is fatal.
    }
    if (!dispatchProducer.writeSync(frame, 0)) {
      // Full: the main thread must be draining before we block, or neither side moves.
      wakeMain();
      dispatchProducer.writeSync(frame);
    }
    let next = firstId;
    for (const group of groups) next += group[1].length;
    return next;
  };

  const runtime = new ConvergenceRuntime(data, {
    dispatchToMain(episodeId, firstId, groups) {
      let id = firstId;
      for (let i = 0; i < groups.length; i += GROUPS_PER_FRAME) {
        id = writeDispatches(episodeId, id, groups.slice(i, i + GROUPS_PER_FRAME));
      }
      wakeMain();
    },
    releaseMainFrames(seq) {
      Atomics.store(mainFlags, MainSlot.RELEASED, seq);
    },
    post,
    // Derived events may travel in the ack ring too: both must be empty for quiescence.
    ingestDrained: () => ingestRing.isDrained() && (ackRing === undefined || ackRing.isDrained()),
  });

  const control: ConvergenceControl = {
    status: () => runtime.status(),
    changeFeed: (limit) => runtime.changeFeed(limit),
    detectCycle: () => runtime.detectCycle(),
  };
  expose(control, nodeEndpoint(port));

  const visit = (view: Uint8Array): void => runtime.handleFrame(decoder.decodeIngest(view), performance.timeOrigin + performance.now());
  // Acks get a path of their own only when the main thread provides one; only then can the worker
  // stop reading events without also stopping the acks that would let it resume.
  const acks = ackRing === undefined ? undefined : new RingConsumer(ackRing, { spinIterations: 0, stallTimeoutMs, onStall: onStall('acks') });
  const maxInFlight = acks === undefined ? Infinity : (data.maxInFlight ?? Infinity);
  const drainIngest = (): number => {
    if (acks === undefined) return consumer.drain(visit, FRAMES_PER_DRAIN);
    let frames = 0;
    // One frame at a time, so the bound is overshot by at most one frame's dispatches. The ack ring
    // is drained after an ingest frame is seen and before it is read: whatever was published there
    // before that frame (a handler's derived events, then its query) is handled first.
    while (frames < FRAMES_PER_DRAIN && runtime.inFlight < maxInFlight && consumer.hasData()) {
      acks.drain(visit);
      if (runtime.inFlight >= maxInFlight || consumer.drain(visit, 1) === 0) break;
      frames++;
    }
    return frames;
  };
  let lastYield = performance.now();
  try {
    while (!runtime.closed) {
      let drained = acks === undefined ? 0 : acks.drain(visit);
      drained += drainIngest();
      const now = performance.timeOrigin + performance.now();
      runtime.tick(now);
      if (runtime.closed) break;
      if (drained > 0) {
        if (performance.now() - lastYield >= BUSY_YIELD_INTERVAL_MS) {
          await yieldToEventLoop();
          lastYield = performance.now();
        }
        continue;
      }
      // Serve queued port messages (Comlink queries) before parking. The signal is read first, so a
      // nudge that arrives after this yield ends the park at once rather than being slept through.
      const signal = consumer.signal();
      await yieldToEventLoop();
      lastYield = performance.now();
      if (runtime.closed || acks?.hasData() === true) continue;
      const blocked = runtime.inFlight >= maxInFlight;
      if (blocked) {
        // Events wait in the ring; only an acknowledgement (or a query) can move us.
        acks!.waitForData(BLOCKED_PARK_MS);
        continue;
      }
      if (consumer.hasData()) continue;
      const deadline = runtime.nextDeadline();
      const wait = deadline === undefined ? IDLE_PARK_MS : Math.max(0, deadline - (performance.timeOrigin + performance.now()));
      // Ack writers nudge the ingest ring too, so this park also ends when an ack arrives.
      if (wait > 0) consumer.waitForData(wait, signal);
    }
  } catch (error) {
    post({ type: 'fatal', error: serializeError(error) });
    throw error;
  } finally {
    port.close();
  }
}
