/**
 * msgpack framing of the messages that travel through the rings.
 *
 * A frame is one msgpack array `[tag, ...fields]` (a tagged union; tags in `protocol.ts`). Events
 * inside frames travel as positional tuples ({@link EVENT_FIELDS}) rather than maps: field names are
 * never encoded, so frames are ~40 % smaller and decode faster, and the "structure" is fixed at
 * compile time, so it is identical on every thread without msgpackr's shared-structure handshake.
 *
 * Decoding copies the frame out of the SharedArrayBuffer into a private scratch Buffer first:
 * msgpackr's native string decoder reading straight from a SAB view costs ~10 µs per event instead of
 * ~0.4 µs on this platform (measured; see bench/RESULTS.md).
 */
import { Packr, Unpackr } from 'msgpackr';
import { ProtocolError } from './errors.js';
import { PAGE_CHANGE_KINDS, type PageChangeEvent, type PageChangeKind } from './events.js';

/** Positions of an event's fields in its tuple. `kind` travels as its index in PAGE_CHANGE_KINDS. */
export const EVENT_FIELDS = [
  'kind',
  'pageId',
  'sourceId',
  'dataType',
  'scopeId',
  'related',
  'edgeType',
  'reason',
  'editDiff',
  'extra',
  'ts',
] as const;

const KIND_CODE: Record<PageChangeKind, number> = Object.fromEntries(PAGE_CHANGE_KINDS.map((kind, i) => [kind, i])) as Record<
  PageChangeKind,
  number
>;

/** An event as it travels inside a frame. */
export type EventTuple = unknown[];

/** Encodes an event as a positional tuple; absent optional fields become null (trailing ones dropped). */
export function eventToTuple(event: PageChangeEvent): EventTuple {
  const tuple: unknown[] = [
    KIND_CODE[event.kind],
    event.pageId,
    event.sourceId,
    event.dataType ?? null,
    event.scopeId ?? null,
    event.related ?? null,
    event.edgeType ?? null,
    event.reason ?? null,
    event.editDiff ?? null,
    event.extra ?? null,
    event.ts ?? null,
  ];
  let length = tuple.length;
  while (length > 3 && tuple[length - 1] === null) length--;
  tuple.length = length;
  return tuple;
}

/** Rebuilds an event from its tuple. Throws ProtocolError on a malformed tuple. */
export function tupleToEvent(tuple: unknown): PageChangeEvent {
  if (!Array.isArray(tuple) || tuple.length < 3) throw new ProtocolError('malformed event tuple');
  const kind = PAGE_CHANGE_KINDS[tuple[0] as number];
  if (kind === undefined) throw new ProtocolError(`unknown event kind code ${String(tuple[0])}`);
  const event: PageChangeEvent = { kind, pageId: tuple[1] as string, sourceId: tuple[2] as string };
  const n = tuple.length;
  if (n > 3 && tuple[3] != null) event.dataType = tuple[3] as string;
  if (n > 4 && tuple[4] != null) event.scopeId = tuple[4] as string;
  if (n > 5 && tuple[5] != null) event.related = tuple[5] as string[];
  if (n > 6 && tuple[6] != null) event.edgeType = tuple[6] as string;
  if (n > 7 && tuple[7] != null) event.reason = tuple[7] as string;
  if (n > 8 && tuple[8] != null) event.editDiff = tuple[8] as string;
  if (n > 9 && tuple[9] != null) event.extra = tuple[9] as Record<string, unknown>;
  if (n > 10 && tuple[10] != null) event.ts = tuple[10] as number;
  return event;
}

/** Packs frames. One per thread (msgpackr packers keep internal state). */
export class FrameEncoder {
  readonly #packr = new Packr({ useRecords: false, structuredClone: false, variableMapSize: true });

  /** Packs a frame `[tag, ...fields]` into bytes ready for a ring. */
  encode(frame: readonly unknown[]): Uint8Array {
    return this.#packr.pack(frame);
  }

  /** Packs an event frame `[tag, meta, events]`; read the events back with {@link readEvents}. */
  encodeEvents(tag: number, meta: unknown, events: readonly PageChangeEvent[]): Uint8Array {
    const tuples = new Array<EventTuple>(events.length);
    for (let i = 0; i < events.length; i++) tuples[i] = eventToTuple(events[i]!);
    return this.#packr.pack([tag, meta, tuples]);
  }
}

/** The events of a frame built by {@link FrameEncoder.encodeEvents} (pass the frame's third field). */
export function readEvents(payload: unknown): PageChangeEvent[] {
  if (!Array.isArray(payload)) throw new ProtocolError('corrupt event frame: events are not an array');
  const events = new Array<PageChangeEvent>(payload.length);
  for (let i = 0; i < payload.length; i++) events[i] = tupleToEvent(payload[i]);
  return events;
}

const INITIAL_SCRATCH_BYTES = 64 * 1024;

/** Unpacks frames read from a ring. One per consuming thread. */
export class FrameDecoder {
  readonly #unpackr = new Unpackr({ useRecords: false, structuredClone: false });
  #scratch = Buffer.allocUnsafe(INITIAL_SCRATCH_BYTES);

  /**
   * Decodes a frame from a (shared) view: copies it into a private buffer, then unpacks. The view
   * may be reused by the ring as soon as this returns.
   */
  decode(view: Uint8Array): unknown[] {
    if (view.length > this.#scratch.length) this.#scratch = Buffer.allocUnsafe(2 ** Math.ceil(Math.log2(view.length)));
    this.#scratch.set(view);
    let frame: unknown;
    try {
      frame = this.#unpackr.unpack(this.#scratch.subarray(0, view.length));
    } catch (cause) {
      throw new ProtocolError('corrupt frame: msgpack decode failed', { cause });
    }
    if (!Array.isArray(frame) || typeof frame[0] !== 'number') throw new ProtocolError('corrupt frame: not a tagged array');
    return frame;
  }
}
