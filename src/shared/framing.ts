/**
 * msgpack framing of the messages that travel through the rings.
 *
 * A frame is one msgpack array `[tag, ...fields]`: a tagged union per ring (`IngestFrame`,
 * `DispatchFrame` in `protocol.ts`), written by {@link FrameEncoder.encodeIngest} /
 * {@link FrameEncoder.encodeDispatch} and read back, checked per tag, by
 * {@link FrameDecoder.decodeIngest} / {@link FrameDecoder.decodeDispatch}. Plain data is written
 * losslessly by hand (msgpack-writer.ts). An EVENTS frame's events are a columnar batch written by
 * the event codec (event-codec.ts), whose columns `EventColumn` (protocol.ts) names; an EVENTS frame
 * decodes with its events still packed, and {@link readEvents} unpacks them where they are needed.
 *
 * Decoding copies the frame out of the SharedArrayBuffer into a private scratch buffer first:
 * msgpackr's native string decoder reading straight from a SAB view costs ~10 µs per event instead of
 * ~0.4 µs on this platform.
 */
import { Unpackr } from 'msgpackr';
import { ProtocolError } from './errors.js';
import { EventBatchWriter } from './event-codec.js';
import type { PageChangeEvent } from './events.js';
import { MsgpackWriter } from './msgpack-writer.js';
import {
  type AckError,
  type ControlFrame,
  type DispatchFrame,
  type DispatchGroup,
  DispatchTag,
  type IngestFrame,
  type IngestMeta,
  IngestTag,
  type QueryKind,
  type SubscriptionSpec,
} from './protocol.js';

export { EVENT_FIELDS, type EventTuple, eventToTuple, readEvents, tupleToEvent } from './event-codec.js';

/** Packs frames. One per thread (it reuses buffers between calls). */
export class FrameEncoder {
  readonly #w = new MsgpackWriter();
  readonly #events = new EventBatchWriter(this.#w);

  /**
   * Packs any frame `[tag, ...fields]` into bytes ready for a ring. Plain data is written losslessly
   * (see msgpack-writer.ts), so an event re-encoded into a dispatch frame arrives as it was sent.
   * Prefer the typed {@link encodeIngest} / {@link encodeDispatch}.
   */
  encode(frame: readonly unknown[]): Uint8Array {
    const w = this.#w;
    w.begin();
    try {
      w.value(frame);
      return w.finish();
    } catch (error) {
      w.abort();
      throw error;
    }
  }

  /** Packs an ingest control frame (anything but EVENTS, which {@link encodeEvents} writes). */
  encodeIngest(frame: ControlFrame): Uint8Array {
    return this.encode(frame);
  }

  /** Packs a dispatch-ring frame. */
  encodeDispatch(frame: DispatchFrame): Uint8Array {
    return this.encode(frame);
  }

  /**
   * Packs an event frame `[tag, meta, events]` (tag: {@link IngestTag.EVENTS} in the engine); read
   * the events back with {@link readEvents}. Events are not schema-validated here (that is the
   * boundary's job), but a field of the wrong type, or an `extra` that is not plain data, throws
   * ValidationError naming it (`events[3].pageId`) rather than producing a corrupt frame.
   */
  encodeEvents(tag: number, meta: unknown, events: readonly PageChangeEvent[]): Uint8Array {
    const w = this.#w;
    w.begin();
    w.strict = true;
    try {
      w.byte(0x93);
      w.number(tag);
      w.value(meta);
      this.#events.write(events);
      return w.finish();
    } catch (error) {
      w.abort();
      throw error;
    } finally {
      w.strict = false;
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Decoding

function malformed(what: string): ProtocolError {
  return new ProtocolError(`corrupt frame: ${what}`);
}

const isId = (v: unknown): v is number => typeof v === 'number';
const isObject = (v: unknown): v is object => typeof v === 'object' && v !== null;

/**
 * Checks a decoded ingest frame's shape for its tag (cheap checks: types of the fixed fields; an
 * EVENTS batch is checked when `readEvents` unpacks it). Throws ProtocolError otherwise.
 */
export function checkIngestFrame(frame: unknown[]): IngestFrame {
  const tag = frame[0] as IngestTag;
  switch (tag) {
    case IngestTag.EVENTS:
      if ((frame[1] === null || isObject(frame[1])) && Array.isArray(frame[2])) {
        if (frame[1] === null) frame[1] = {};
        return frame as [typeof IngestTag.EVENTS, IngestMeta, unknown[]];
      }
      break;
    case IngestTag.ACKS:
      if (isId(frame[1])) {
        if (frame[2] == null) frame[2] = [];
        if (Array.isArray(frame[2])) return frame as [typeof IngestTag.ACKS, number, AckError[]];
      }
      break;
    case IngestTag.SUBSCRIBE:
      if (isId(frame[1]) && isObject(frame[2])) return frame as [typeof IngestTag.SUBSCRIBE, number, SubscriptionSpec];
      break;
    case IngestTag.UNSUBSCRIBE:
      if (isId(frame[1]) && Array.isArray(frame[2])) return frame as [typeof IngestTag.UNSUBSCRIBE, number, string[]];
      break;
    case IngestTag.AWAIT_QUIESCENCE:
    case IngestTag.CANCEL_WAIT:
      if (isId(frame[1])) return frame as [typeof tag, number];
      break;
    case IngestTag.CLOSE:
      return [tag];
    case IngestTag.QUERY:
      if (isId(frame[1]) && typeof frame[2] === 'string') return frame as [typeof IngestTag.QUERY, number, QueryKind, unknown];
      break;
    default:
      return unknownTag(tag, 'ingest');
  }
  throw malformed(`bad fields for ingest tag ${String(tag)}`);
}

/** Checks a decoded dispatch frame's shape. Throws ProtocolError otherwise. */
export function checkDispatchFrame(frame: unknown[]): DispatchFrame {
  const tag = frame[0] as DispatchTag;
  switch (tag) {
    case DispatchTag.DISPATCH:
      if (typeof frame[1] === 'string' && isId(frame[2]) && frame[3] instanceof Uint8Array && frame[3].byteLength % 8 === 0 && Array.isArray(frame[4])) return frame as DispatchFrame;
      throw malformed('bad fields for dispatch tag DISPATCH');
    default:
      return unknownTag(tag, 'dispatch');
  }
}

/** The exhaustive-switch guard: `tag` is `never` once every tag has a case. */
function unknownTag(tag: never, ring: string): never {
  throw malformed(`unknown ${ring} frame tag ${String(tag)}`);
}

// ------------------------------------------------------------------------------------------------
// Dispatch groups (see DispatchTag.DISPATCH)

let packScratch = new Float64Array(4096);

/**
 * Packs dispatch groups into a DISPATCH frame's `groups` bytes and `events` tuples. The bytes are a
 * view of a scratch buffer: valid until the next call (encode the frame before packing again).
 */
export function packDispatchGroups(groups: readonly DispatchGroup[]): { groups: Uint8Array; events: unknown[][] } {
  let words = 0;
  for (let i = 0; i < groups.length; i++) words += 2 + groups[i]![1].length;
  if (words > packScratch.length) packScratch = new Float64Array(2 ** Math.ceil(Math.log2(words)));
  const out = packScratch;
  const events: unknown[][] = [];
  let at = 0;
  for (let i = 0; i < groups.length; i++) {
    const [event, handles] = groups[i]!;
    if (typeof event === 'number') out[at++] = event;
    else {
      out[at++] = events.length;
      events.push(event);
    }
    out[at++] = handles.length;
    for (let j = 0; j < handles.length; j++) out[at++] = handles[j]!;
  }
  return { groups: new Uint8Array(out.buffer, 0, at * 8), events };
}

/** Called per dispatch of a frame: `ref` is a negative eventRef or a tuple from the frame's events. */
export type DispatchVisitor = (ref: number | unknown[], handle: number, dispatchId: number) => void;

/** A DISPATCH frame's group words, checked (ProtocolError before anything runs if malformed). */
function dispatchWords(frame: DispatchFrame): Float64Array {
  const bytes = frame[3];
  const events = frame[4];
  const words = bytes.byteOffset % 8 === 0 ? new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8) : new Float64Array(bytes.slice().buffer);
  const n = words.length;
  for (let at = 0; at < n; ) {
    const ref = words[at]!;
    const count = words[at + 1]!;
    const refOk = Number.isInteger(ref) && (ref < 0 || (ref < events.length && Array.isArray(events[ref])));
    if (!refOk || !Number.isInteger(count) || count < 0 || at + 2 + count > n) throw malformed('bad dispatch group');
    at += 2 + count;
  }
  return words;
}

/**
 * Walks a DISPATCH frame's groups in dispatch-id order. Throws ProtocolError on malformed groups,
 * before the first call: a corrupt frame runs no handler.
 */
export function readDispatchGroups(frame: DispatchFrame, visit: DispatchVisitor): void {
  const words = dispatchWords(frame);
  const events = frame[4];
  const n = words.length;
  let id = frame[2];
  for (let at = 0; at < n; ) {
    const ref = words[at]!;
    const count = words[at + 1]!;
    const event = ref < 0 ? ref : events[ref]!;
    at += 2;
    for (const end = at + count; at < end; at++) visit(event, words[at]!, id++);
  }
}

/** A DISPATCH frame's groups as `[event, handles]` pairs (tests and diagnostics). */
export function unpackDispatchGroups(frame: DispatchFrame): DispatchGroup[] {
  const words = dispatchWords(frame);
  const events = frame[4];
  const out: DispatchGroup[] = [];
  for (let at = 0; at < words.length; ) {
    const ref = words[at]!;
    const count = words[at + 1]!;
    out.push([ref < 0 ? ref : events[ref]!, Array.from(words.subarray(at + 2, at + 2 + count))]);
    at += 2 + count;
  }
  return out;
}

const INITIAL_SCRATCH_BYTES = 64 * 1024;
/** A scratch buffer grown past this for a huge frame is dropped after it, not kept for good. */
const MAX_KEPT_SCRATCH_BYTES = 4 * 1024 * 1024;

/** Unpacks frames read from a ring. One per consuming thread. */
export class FrameDecoder {
  // copyBuffers: binary values must not alias the scratch buffer, which the next decode overwrites.
  readonly #unpackr = new Unpackr({ useRecords: false, structuredClone: false, copyBuffers: true });
  // A plain Uint8Array, not a Buffer: msgpackr slices binary values out of its source, and a
  // Buffer source would turn a sender's Uint8Array into a Buffer on the way.
  #scratch = new Uint8Array(INITIAL_SCRATCH_BYTES);

  /**
   * Decodes a frame from a (shared) view: copies it into a private buffer, then unpacks. The view
   * may be reused by the ring as soon as this returns.
   */
  decode(view: Uint8Array): unknown[] {
    if (view.length > this.#scratch.length) this.#scratch = new Uint8Array(2 ** Math.ceil(Math.log2(view.length)));
    this.#scratch.set(view);
    let frame: unknown;
    try {
      frame = this.#unpackr.unpack(this.#scratch.subarray(0, view.length));
    } catch (cause) {
      throw new ProtocolError('corrupt frame: msgpack decode failed', { cause });
    } finally {
      if (this.#scratch.length > MAX_KEPT_SCRATCH_BYTES) this.#scratch = new Uint8Array(INITIAL_SCRATCH_BYTES);
    }
    if (!Array.isArray(frame) || typeof frame[0] !== 'number') throw new ProtocolError('corrupt frame: not a tagged array');
    return frame;
  }

  /** Decodes an ingest-ring frame, checked per tag (ProtocolError if malformed). */
  decodeIngest(view: Uint8Array): IngestFrame {
    return checkIngestFrame(this.decode(view));
  }

  /** Decodes a dispatch-ring frame, checked per tag (ProtocolError if malformed). */
  decodeDispatch(view: Uint8Array): DispatchFrame {
    return checkDispatchFrame(this.decode(view));
  }
}
