/**
 * The main thread's writer into the ingest ring: validates and prepares events, encodes them into
 * frames (splitting batches so that a frame stays under the ring's limit), and writes control frames
 * (subscription changes, quiescence waits, acknowledgements) that must never be refused.
 */
import { FrameTooLargeError } from '../shared/errors.js';
import { eventWithDefaults, type PageChangeEvent, validateEvents } from '../shared/events.js';
import { FrameEncoder } from '../shared/framing.js';
import { type ControlFrame, type IngestMeta, IngestTag } from '../shared/protocol.js';
import { type Ring, RingProducer } from '../shared/ring.js';

/** Events per ingest frame; larger batches are split so that a frame stays well under the ring's limit. */
const EVENTS_PER_FRAME = 512;

/** Where the writer keeps the event objects of the frames it wrote (the dispatcher). */
export interface FrameKeeper {
  /** False while too many frames are held already. */
  canRemember(): boolean;
  /** `bytes`: the frame's encoded size. */
  remember(seq: number, events: readonly PageChangeEvent[], bytes: number): void;
}

export class IngestWriter {
  readonly #ring: Ring;
  readonly #producer: RingProducer;
  /** Writes that must never be refused (acks, control frames): #producer itself unless it throws on full. */
  readonly #waitingProducer: RingProducer;
  readonly #encoder = new FrameEncoder();
  readonly #frames: FrameKeeper;
  #nextFrameSeq = 1;
  #writes = 0;
  /** Where derived events go (see {@link routeDerived}); undefined: the ingest ring, like the rest. */
  #derived: { producer: RingProducer; afterWrite: () => void } | undefined;

  /** `frames` keeps each frame's event objects until the worker releases them (see MainDispatcher). */
  constructor(ring: Ring, onFull: 'wait' | 'throw', frames: FrameKeeper) {
    this.#ring = ring;
    this.#frames = frames;
    this.#producer = new RingProducer(ring, { onFull });
    // With onFull 'wait' one producer keeps every frame of this thread in call order. With 'throw',
    // event writes never queue, so a separate waiting producer cannot overtake them.
    this.#waitingProducer = onFull === 'wait' ? this.#producer : new RingProducer(ring, { onFull: 'wait' });
  }

  /**
   * Sends derived events (those with a `parent` dispatch) through `producer` — the ack ring, which
   * the worker drains even while it is at `maxInFlight` — instead of the ingest ring. Otherwise a
   * handler awaiting its derived write behind a full ingest ring would never settle, its dispatch
   * would never be acknowledged, and the worker would never drain the ring: a deadlock. They carry
   * no frame `seq` (the worker may read them before older ingest frames, so they are not referred
   * to by seq: their dispatches carry the events themselves) and always wait for space (never
   * refused by onFull 'throw', like acknowledgements). The budget bounds how many there are.
   * `afterWrite` runs once they are in the ring (the worker parks on the ingest ring: nudge it).
   */
  routeDerived(producer: RingProducer, afterWrite: () => void): void {
    this.#derived = { producer, afterWrite };
  }

  /** Frames handed to the ring so far (any kind): tells whether anything was written since a moment. */
  get writes(): number {
    return this.#writes;
  }

  /**
   * Validates (all or none), prepares and writes events. Returns undefined when they are in the ring
   * already, else a promise that resolves once they are. Throws on invalid input or a full ring with
   * onFull 'throw'.
   */
  writeEvents(
    events: PageChangeEvent | readonly PageChangeEvent[],
    sourceId: string | undefined,
    cause: string | undefined,
    parent: number | undefined,
  ): Promise<void> | undefined {
    const list = prepareEvents(events, sourceId);
    if (list.length === 0) return undefined;
    const frames: Uint8Array[] = [];
    const derived = parent === undefined ? undefined : this.#derived;
    const limit = this.#ring.maxFrameBytes;
    for (let i = 0; i < list.length; i += EVENTS_PER_FRAME) this.#encodeChunk(list.slice(i, i + EVENTS_PER_FRAME), i, cause, parent, derived === undefined, limit, frames);
    this.#writes++;
    if (derived === undefined) return this.#producer.write(frames);
    // A frame too large for the (small) ack ring still goes to the ingest ring: rare, and correct
    // (the worker counts both rings for quiescence), only not exempt from the ingest ring's wait.
    const small = frames.filter((f) => f.length <= derived.producer.ring.maxFrameBytes);
    const large = small.length === frames.length ? [] : frames.filter((f) => f.length > derived.producer.ring.maxFrameBytes);
    const pending = small.length === 0 ? undefined : derived.producer.write(small);
    if (pending === undefined) derived.afterWrite();
    else void pending.then(derived.afterWrite, () => undefined); // a closed ring rejects the caller's promise
    const pendingLarge = large.length === 0 ? undefined : this.#producer.write(large);
    if (pendingLarge === undefined) return pending;
    return pending === undefined ? pendingLarge : Promise.all([pending, pendingLarge]).then(() => undefined);
  }

  /** Writes a control frame `[tag, ...]`; waits for space whatever onFull says. */
  writeControl(frame: ControlFrame): Promise<void> | undefined {
    const pending = this.#waitingProducer.write(this.#encoder.encodeIngest(frame));
    this.#writes++;
    return pending;
  }

  /** `first`: the index of `events[0]` in the caller's batch, to name an event too large on its own. */
  /** `withSeq`: the frame may be numbered and its events kept (derived frames never are). */
  #encodeChunk(
    events: readonly PageChangeEvent[],
    first: number,
    cause: string | undefined,
    parent: number | undefined,
    withSeq: boolean,
    limit: number,
    out: Uint8Array[],
  ): void {
    // A frame with a seq is remembered, so dispatches refer to its events instead of carrying
    // copies. Under a backlog (many frames unreleased) frames go without: the worker then sends
    // the events themselves, and this thread holds no objects for events still waiting in the ring.
    const keep = withSeq && this.#frames.canRemember();
    const seq = this.#nextFrameSeq;
    const meta: IngestMeta = keep ? { seq } : {};
    if (cause !== undefined) meta.cause = cause;
    if (parent !== undefined) meta.parent = parent;
    const frame = this.#encoder.encodeEvents(IngestTag.EVENTS, meta, events);
    if (frame.length <= limit) {
      if (keep) {
        this.#nextFrameSeq++;
        this.#frames.remember(seq, events, frame.length);
      }
      out.push(frame);
      return;
    }
    if (events.length === 1) throw new FrameTooLargeError(frame.length, limit, { field: `events[${first}]` });
    const half = events.length >> 1;
    this.#encodeChunk(events.slice(0, half), first, cause, parent, withSeq, limit, out);
    this.#encodeChunk(events.slice(half), first + half, cause, parent, withSeq, limit, out);
  }
}

/** Validates events (all or none), applies the default sourceId and fills in `ts`. */
function prepareEvents(events: PageChangeEvent | readonly PageChangeEvent[], sourceId: string | undefined): PageChangeEvent[] {
  const many = Array.isArray(events);
  const input = (many ? events : [events]) as readonly unknown[];
  let prepared: unknown[] | undefined;
  const now = Date.now();
  for (let i = 0; i < input.length; i++) {
    const e = input[i] as PageChangeEvent | null;
    if (e === null || typeof e !== 'object') continue;
    if ((e.sourceId === undefined && sourceId !== undefined) || e.ts === undefined) {
      // Copy-on-write: the caller's objects are never mutated, and an array that needs nothing is not copied.
      prepared ??= input.slice();
      prepared[i] = eventWithDefaults(e, sourceId, now);
    }
  }
  const list = prepared ?? input;
  return validateEvents(many ? list : list[0], 'events');
}
