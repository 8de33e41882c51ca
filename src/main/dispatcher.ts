/**
 * Main-thread side of the dispatch ring: runs subscription handlers for the batches the convergence
 * worker decided, and acknowledges each dispatch when its handler settles.
 *
 * Acknowledgements go back through a ring of their own (the ack ring), so they never queue behind
 * event writes: with the ingest ring full and the worker at `maxInFlight`, the acks that let it
 * resume still get through. A handler's emitted events are written (or declared pending) before its
 * acknowledgement, so the worker counts them before the dispatch is released. Synchronous handlers
 * are acknowledged together: one ACKS frame per dispatch frame once {@link ACK_EVERY} or more have
 * settled (else per drain turn), so that a worker held at maxInFlight resumes while this thread runs
 * the rest; asynchronous ones as they settle, coalesced per microtask.
 */
import { ProtocolError, type SerializedError, serializeError } from '../shared/errors.js';
import { ConvergenceDispatchProtocol, type PageChangeEvent } from '../shared/events.js';
import { type FrameDecoder, type FrameEncoder, readDispatchGroups, tupleToEvent } from '../shared/framing.js';
import { type AckError, IngestTag, MainSlot, parseEventRef, type PoolTaskMessage } from '../shared/protocol.js';
import type { RingConsumer, RingProducer } from '../shared/ring.js';
import { seqCompare } from '../shared/ring-layout.js';

/** What a handler receives besides the event. */
export interface Dispatch {
  /** Engine-wide dispatch sequence number. */
  readonly id: number;
  readonly subscriptionId: string;
  /** `convergence:dispatch:<subscriptionId>` */
  readonly key: string;
  readonly episodeId: string;
  /**
   * Emits changes derived from this dispatch: like `engine.dispatchChange`, with this dispatch as
   * their cause (so they count against `episodeBudget` and `maxDerivationDepth`, and feed
   * `detectCycle`), also after an await.
   */
  dispatchChange(events: PageChangeEvent | readonly PageChangeEvent[], options?: { sourceId?: string }): Promise<void>;
}

/** Writes events derived from a dispatch (the engine's dispatchChange with the dispatch as cause). */
export type DerivedWriter = (events: PageChangeEvent | readonly PageChangeEvent[], options: { sourceId?: string } | undefined, dispatch: Dispatch) => Promise<void>;

/** The object a handler receives: its methods live on the prototype, so one costs four fields. */
class DispatchHandle implements Dispatch {
  readonly id: number;
  readonly subscriptionId: string;
  readonly key: string;
  readonly episodeId: string;
  readonly #write: DerivedWriter;

  constructor(id: number, subscriptionId: string, key: string, episodeId: string, write: DerivedWriter) {
    this.id = id;
    this.subscriptionId = subscriptionId;
    this.key = key;
    this.episodeId = episodeId;
    this.#write = write;
  }

  dispatchChange(events: PageChangeEvent | readonly PageChangeEvent[], options?: { sourceId?: string }): Promise<void> {
    return this.#write(events, options, this);
  }

  toJSON(): { id: number; subscriptionId: string; key: string; episodeId: string } {
    return { id: this.id, subscriptionId: this.subscriptionId, key: this.key, episodeId: this.episodeId };
  }
}

/** Whether `value` is a dispatch this thread handed to a handler. */
export function isDispatch(value: unknown): value is Dispatch {
  return value instanceof DispatchHandle;
}

/** A main-thread subscription handler. Its promise (if any) keeps the engine from quiescence until it settles. */
export type SubscriptionHandler = (event: PageChangeEvent, dispatch: Dispatch) => void | Promise<void>;

/** Reported through `engine.on('dispatch-error', …)`. */
export interface DispatchErrorInfo {
  error: unknown;
  subscriptionId: string;
  dispatchId: number;
  event: PageChangeEvent;
}

/** A subscription's colony-pool task: module URL and export name. */
export interface TaskTarget {
  readonly module: string;
  readonly name: string;
}

interface HandlerEntry {
  readonly id: string;
  readonly key: string;
  readonly handler: SubscriptionHandler | undefined;
  readonly task: TaskTarget | undefined;
  /** Asynchronous calls of this handler (or task) not yet settled. */
  running: number;
}

/**
 * Remembered frames beyond which `remember` tries to trim released ones. Small: frames held long
 * get promoted to the old generation, and a full GC over them cost more than the encoding.
 */
const MAX_FRAMES_BEFORE_TRIM = 4;

/**
 * How much is held for dispatch references at most: frames, and the encoded bytes of their events
 * (a stand-in for the objects' size). Past either (a backlog in the ingest ring) frames are written
 * without a seq and their dispatches carry the events: memory stays bounded whatever the backlog.
 * Bounded by bytes rather than by a small count of frames: a burst that fits in the ring (the
 * common case) is then dispatched entirely by reference — a dispatch that carries its event costs
 * the worker an encoding and this thread a decoding (measured ~1.5 µs of process CPU per event).
 */
const MAX_REMEMBERED_FRAMES = 4096;
export const DEFAULT_MAX_REMEMBERED_BYTES = 16 * 1024 * 1024;
/**
 * What a remembered event costs on the heap besides its encoded bytes (object header, properties,
 * string headers). The encoded size alone understated it ~10×: the codec's dictionary brings an
 * event of a burst down to ~8 bytes, so a 16 MiB window held ~2 M caller objects (~250 MB) under a
 * slow handler's backlog. With it, the window holds ~200 k small events (~25 MB).
 */
export const REMEMBERED_EVENT_OVERHEAD_BYTES = 72;

/** Settled dispatches after which an ACKS frame goes out at once, mid-drain (see {@link MainDispatcher}). */
const ACK_EVERY = 256;

/** Frames drained per macrotask, so a storm of dispatches cannot starve the embedder's event loop. */
const FRAMES_PER_TURN = 64;

/**
 * The dispatch whose handler is running synchronously right now: what `engine.dispatchChange`
 * called from inside it is derived from. Deliberately not an AsyncLocalStorage: on Node 20 that
 * installs promise hooks that tax every promise in the embedder's process (measured ~0.25 µs per
 * event on the ingest path). Changes a handler emits after an await are attributed with
 * `dispatch.dispatchChange(events)` or `engine.dispatchChange(events, { causedBy: dispatch })`.
 */
export const dispatchContext = {
  current: undefined as Dispatch | undefined,
};

/** Failed dispatches reported per ACKS frame, and the longest message kept in one. */
const ERRORS_PER_ACK_FRAME = 32;
const ACK_MESSAGE_CHARS = 500;

/** What an ACKS frame says about a failure: name, code and the start of the message. */
function ackError(error: unknown): SerializedError {
  const full = serializeError(error);
  return { name: full.name, code: full.code, message: full.message.length > ACK_MESSAGE_CHARS ? `${full.message.slice(0, ACK_MESSAGE_CHARS)}…` : full.message };
}

export class MainDispatcher {
  readonly #consumer: RingConsumer;
  readonly #producer: RingProducer;
  readonly #decoder: FrameDecoder;
  readonly #encoder: FrameEncoder;
  readonly #flags: Int32Array;
  readonly #handlers = new Map<number, HandlerEntry>();
  readonly #onError: (info: DispatchErrorInfo) => void;
  readonly #onFatal: (error: unknown) => void;
  readonly #runTask: (task: PoolTaskMessage) => Promise<unknown>;
  readonly #writeDerived: DerivedWriter;
  readonly #afterAck: () => void;
  /** Event objects of this thread's ingest frames, by frame seq, until the worker releases them. */
  readonly #sent = new Map<number, readonly PageChangeEvent[]>();
  /** Encoded bytes of the frames in #sent, by seq, and their sum. */
  readonly #sentBytes = new Map<number, number>();
  #rememberedBytes = 0;
  readonly #maxRememberedBytes: number;
  #settled = 0;
  #errors: AckError[] = [];
  #flushQueued = false;
  #draining = false;
  #running = 0;
  /** Entries with running > 0, to name them when close() gives up on them. */
  readonly #busy = new Set<HandlerEntry>();
  /** Set by stop(): handlers that settle later are ignored, nothing more is written. */
  #stopped = false;
  /** A wait on MainSlot.WAKE is pending. */
  #waiting = false;

  constructor(options: {
    consumer: RingConsumer;
    producer: RingProducer;
    decoder: FrameDecoder;
    encoder: FrameEncoder;
    flags: Int32Array;
    onError: (info: DispatchErrorInfo) => void;
    onFatal: (error: unknown) => void;
    runTask: (task: PoolTaskMessage) => Promise<unknown>;
    /** Writes what a handler emits through `dispatch.dispatchChange`. */
    writeDerived: DerivedWriter;
    /** Called after an ACKS frame is written (the worker parks on the ingest ring: nudge it). */
    afterAck?: () => void;
    /** Encoded bytes of remembered frames held at most (default {@link DEFAULT_MAX_REMEMBERED_BYTES}). */
    maxRememberedBytes?: number;
  }) {
    this.#maxRememberedBytes = options.maxRememberedBytes ?? DEFAULT_MAX_REMEMBERED_BYTES;
    this.#runTask = options.runTask;
    this.#writeDerived = options.writeDerived;
    this.#afterAck = options.afterAck ?? (() => undefined);
    this.#consumer = options.consumer;
    this.#producer = options.producer;
    this.#decoder = options.decoder;
    this.#encoder = options.encoder;
    this.#flags = options.flags;
    this.#onError = options.onError;
    this.#onFatal = options.onFatal;
    Atomics.store(this.#flags, MainSlot.PARKED, 1);
    this.#park(Atomics.load(this.#flags, MainSlot.WAKE));
  }

  /**
   * Waits (without blocking) for the worker's wake: it bumps MainSlot.WAKE past `signal` and
   * notifies once it has taken PARKED from 1 to 0. `signal` is read after PARKED was set and before
   * the ring was last found empty, so a wake in between ends the wait at once ('not-equal').
   */
  #park(signal: number): void {
    // One wait at a time (a wake from elsewhere must not leave a second one behind).
    if (this.#waiting || this.#stopped) return;
    this.#waiting = true;
    const result = Atomics.waitAsync(this.#flags, MainSlot.WAKE, signal);
    if (result.async) void result.value.then(this.#woken);
    else queueMicrotask(this.#woken);
  }

  readonly #woken = (): void => {
    this.#waiting = false;
    this.wake();
  };

  /** Handlers currently running (asynchronous ones not yet settled). */
  get running(): number {
    return this.#running;
  }

  /** Subscriptions with handlers still running, and how many calls each. */
  runningBySubscription(): Map<string, number> {
    const out = new Map<string, number>();
    for (const entry of this.#busy) out.set(entry.id, (out.get(entry.id) ?? 0) + entry.running);
    return out;
  }

  /**
   * Stops for good (engine closed or failed): no more frames are read, and handlers that settle
   * afterwards are ignored — their acknowledgements have nowhere to go.
   */
  stop(): void {
    this.#stopped = true;
    this.#settled = 0;
    this.#errors = [];
    // End a pending wait on the wake signal (wake() then returns at once).
    Atomics.add(this.#flags, MainSlot.WAKE, 1);
    Atomics.notify(this.#flags, MainSlot.WAKE);
  }

  register(handle: number, id: string, handler: SubscriptionHandler | undefined, task?: TaskTarget): void {
    this.#handlers.set(handle, { id, key: ConvergenceDispatchProtocol.dispatchKey(id), handler, task, running: 0 });
  }

  unregister(handle: number): void {
    this.#handlers.delete(handle);
  }

  /** Frames whose events are still kept for dispatch references (diagnostics, tests). */
  get rememberedFrames(): number {
    return this.#sent.size;
  }

  /** Bytes charged for the frames still remembered: encoded size plus a per-event overhead (diagnostics, tests). */
  get rememberedBytes(): number {
    return this.#rememberedBytes;
  }

  /** Whether the next frame may be remembered (false under a backlog; see MAX_REMEMBERED_FRAMES). */
  canRemember(): boolean {
    if (this.#hasRoom()) return true;
    this.trim();
    return this.#hasRoom();
  }

  #hasRoom(): boolean {
    return this.#sent.size < MAX_REMEMBERED_FRAMES && this.#rememberedBytes < this.#maxRememberedBytes;
  }

  /** Keeps a frame's events (`bytes`: its encoded size; each event also counts {@link REMEMBERED_EVENT_OVERHEAD_BYTES}) so that dispatches can refer to them instead of carrying copies. */
  remember(seq: number, events: readonly PageChangeEvent[], bytes = 0): void {
    const cost = bytes + events.length * REMEMBERED_EVENT_OVERHEAD_BYTES;
    this.#sent.set(seq, events);
    this.#sentBytes.set(seq, cost);
    this.#rememberedBytes += cost;
    if (this.#sent.size > MAX_FRAMES_BEFORE_TRIM) this.trim();
  }

  /**
   * Drops remembered frames the worker has released. Only when the dispatch ring is empty: the
   * worker publishes a release after the dispatch frames that refer to those events, so reading
   * the release first and then finding the ring empty means no unread frame still needs them.
   */
  trim(): void {
    if (this.#sent.size === 0) return;
    // RELEASED is an Int32 slot: past 2^31 frames it wraps, so compare modulo 2^32.
    const released = Atomics.load(this.#flags, MainSlot.RELEASED);
    const oldest = this.#sent.keys().next().value as number;
    if (seqCompare(oldest, released) > 0 || this.#consumer.ring.usedBytes() !== 0) return;
    for (const seq of this.#sent.keys()) {
      if (seqCompare(seq, released) > 0) break;
      this.#sent.delete(seq);
      this.#rememberedBytes -= this.#sentBytes.get(seq) ?? 0;
      this.#sentBytes.delete(seq);
    }
  }

  /** Called when the worker says it wrote while we were parked (see #park). Drains until the ring is empty. */
  wake(): void {
    if (this.#draining || this.#stopped) return;
    this.#draining = true;
    this.#drainTurn();
  }

  #drainTurn(): void {
    if (this.#stopped) {
      this.#draining = false;
      return;
    }
    try {
      const frames = this.#consumer.drain(this.#visit, FRAMES_PER_TURN);
      this.#flush();
      if (frames === FRAMES_PER_TURN) {
        setImmediate(() => this.#drainTurn());
        return;
      }
      // Say we are parked, then look once more: the worker writes first and reads PARKED second,
      // so either it sees PARKED = 1 and wakes us, or we see its frame here.
      Atomics.store(this.#flags, MainSlot.PARKED, 1);
      const signal = Atomics.load(this.#flags, MainSlot.WAKE);
      if (this.#consumer.hasData()) {
        Atomics.store(this.#flags, MainSlot.PARKED, 0);
        setImmediate(() => this.#drainTurn());
        return;
      }
      this.#draining = false;
      this.#park(signal);
      this.trim();
    } catch (error) {
      this.#draining = false;
      this.#onFatal(error);
    }
  }

  /** The event of the group being run, and what it was looked up from (groups hold 1–2 dispatches each). */
  #lastRef: number | unknown[] | undefined;
  #lastEvent: PageChangeEvent | undefined;
  #episodeId = '';

  readonly #visitDispatch = (ref: number | unknown[], handle: number, dispatchId: number): void => {
    if (ref !== this.#lastRef) {
      this.#lastEvent = typeof ref === 'number' ? this.#lookup(ref) : tupleToEvent(ref);
      this.#lastRef = ref;
    }
    this.#run(handle, this.#lastEvent!, dispatchId, this.#episodeId);
  };

  readonly #visit = (view: Uint8Array): void => {
    const frame = this.#decoder.decodeDispatch(view);
    this.#episodeId = frame[1];
    this.#lastRef = undefined;
    try {
      readDispatchGroups(frame, this.#visitDispatch);
    } finally {
      this.#lastRef = undefined;
      this.#lastEvent = undefined;
    }
    // Acknowledge as we go rather than once per drain turn: the worker, held at maxInFlight, goes
    // on matching the next frames while this thread runs the rest of the handlers.
    if (this.#settled >= ACK_EVERY) this.#flush();
  };

  #lookup(ref: number): PageChangeEvent {
    const [seq, index] = parseEventRef(ref);
    const event = this.#sent.get(seq)?.[index];
    if (event === undefined) throw new ProtocolError(`dispatch refers to event ${index} of frame ${seq}, which is no longer held`);
    return event;
  }

  #run(handle: number, event: PageChangeEvent, dispatchId: number, episodeId: string): void {
    const entry = this.#handlers.get(handle);
    // Unsubscribed meanwhile, or a subscription without a handler: nothing to run, but the dispatch
    // still has to be released.
    if (entry === undefined || (entry.handler === undefined && entry.task === undefined)) {
      this.#settled++;
      return;
    }
    const dispatch = new DispatchHandle(dispatchId, entry.id, entry.key, episodeId, this.#writeDerived);
    let result: unknown;
    try {
      if (entry.task !== undefined) {
        // Structured clone per pool dispatch: pool tasks are coarse units of work, not the hot path.
        result = this.#runTask({ module: entry.task.module, name: entry.task.name, event, dispatch: dispatch.toJSON() });
      } else {
        const outer = dispatchContext.current;
        dispatchContext.current = dispatch;
        try {
          result = entry.handler!(event, dispatch);
        } finally {
          dispatchContext.current = outer;
        }
      }
    } catch (error) {
      this.#fail(entry.id, dispatchId, event, error);
      this.#settled++;
      return;
    }
    if (result === null || typeof result !== 'object' || typeof (result as PromiseLike<void>).then !== 'function') {
      this.#settled++;
      return;
    }
    this.#running++;
    if (entry.running++ === 0) this.#busy.add(entry);
    (result as PromiseLike<void>).then(
      () => this.#settleAsync(entry),
      (error: unknown) => {
        if (!this.#stopped) this.#fail(entry.id, dispatchId, event, error);
        this.#settleAsync(entry);
      },
    );
  }

  #settleAsync(entry: HandlerEntry): void {
    this.#running--;
    if (--entry.running === 0) this.#busy.delete(entry);
    if (this.#stopped) return;
    this.#settled++;
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(() => {
        this.#flushQueued = false;
        this.#flush();
      });
    }
  }

  #fail(subscriptionId: string, dispatchId: number, event: PageChangeEvent, error: unknown): void {
    // The worker only counts failures; the error itself goes to the engine's listeners. A short
    // form keeps every ACKS frame small whatever the handler threw.
    this.#errors.push([dispatchId, subscriptionId, ackError(error)]);
    try {
      this.#onError({ error, subscriptionId, dispatchId, event });
    } catch {
      // A throwing 'dispatch-error' listener must not stop acknowledgement.
    }
  }

  #flush(): void {
    if (this.#stopped || (this.#settled === 0 && this.#errors.length === 0)) return;
    const frames: Uint8Array[] = [];
    const errors = this.#errors;
    // Errors in frames of ERRORS_PER_ACK_FRAME; the settled count goes with the first.
    for (let i = 0; i === 0 || i < errors.length; i += ERRORS_PER_ACK_FRAME) {
      frames.push(this.#encoder.encodeIngest([IngestTag.ACKS, i === 0 ? this.#settled : 0, errors.slice(i, i + ERRORS_PER_ACK_FRAME)]));
    }
    this.#settled = 0;
    this.#errors = [];
    try {
      const pending = this.#producer.write(frames);
      if (pending !== undefined) pending.then(this.#afterAck, (error: unknown) => this.#onFatal(error));
      else this.#afterAck();
    } catch (error) {
      // Never thrown into the embedder's microtask: the engine decides what a failed write means.
      this.#onFatal(error);
    }
  }
}
