/**
 * A minimal msgpack writer for the hand-written event-batch encoder in `framing.ts`: appends values
 * to slab Buffers so that a frame stays valid after later encodes, and falls back to msgpackr for
 * free-form values.
 */
import { Packr } from 'msgpackr';

/** msgpack nil, false and true. */
export const NIL = 0xc0;
export const FALSE = 0xc2;
export const TRUE = 0xc3;
/** Frames are cut from slabs this big; a frame stays valid after later encodes (they move on). */
const SLAB_BYTES = 256 * 1024;
/** Room a frame may take before the slab is replaced rather than grown mid-frame. */
const FRAME_HEADROOM = 16 * 1024;

/**
 * Appends msgpack values to a slab Buffer. Methods write at `pos` and grow the slab when needed
 * (copying the frame begun so far); every write checks its own bound, so no caller pre-sizes.
 */
export class MsgpackWriter {
  buf: Buffer = Buffer.allocUnsafeSlow(SLAB_BYTES);
  view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  /** Start of the frame being written. */
  start = 0;
  pos = 0;
  readonly #packr = new Packr({ useRecords: false, structuredClone: false, variableMapSize: true });
  readonly #utf8 = new TextEncoder();

  /** Starts a frame, on a fresh slab if this one is nearly used up. */
  begin(): void {
    if (this.buf.length - this.pos < FRAME_HEADROOM) this.#replace(SLAB_BYTES);
    this.start = this.pos;
  }

  /** Ends the frame: returns its bytes (a view that later frames never overwrite). */
  finish(): Uint8Array {
    const frame = this.buf.subarray(this.start, this.pos);
    this.pos = (this.pos + 7) & ~7;
    this.start = this.pos;
    return frame;
  }

  /** Abandons the frame begun (after an error), so the next one starts clean. */
  abort(): void {
    this.pos = this.start;
  }

  #replace(bytes: number): void {
    const used = this.pos - this.start;
    const next = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, 2 ** Math.ceil(Math.log2(used + bytes + FRAME_HEADROOM))));
    this.buf.copy(next, 0, this.start, this.pos);
    this.buf = next;
    this.view = new DataView(next.buffer, next.byteOffset, next.byteLength);
    this.start = 0;
    this.pos = used;
  }

  /**
   * A position to come back to. Relative to the frame's start, because the frame moves when the
   * slab is replaced mid-frame.
   */
  mark(): number {
    return this.pos - this.start;
  }

  /** Drops everything written after `mark`. */
  rewind(mark: number): void {
    this.pos = this.start + mark;
  }

  room(bytes: number): void {
    if (this.pos + bytes > this.buf.length) this.#replace(bytes);
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.pos++] = b;
  }

  arrayHeader(n: number): void {
    this.room(5);
    const { buf } = this;
    if (n < 16) buf[this.pos++] = 0x90 | n;
    else if (n < 0x10000) {
      buf[this.pos] = 0xdc;
      buf[this.pos + 1] = n >>> 8;
      buf[this.pos + 2] = n & 0xff;
      this.pos += 3;
    } else {
      buf[this.pos] = 0xdd;
      this.view.setUint32(this.pos + 1, n);
      this.pos += 5;
    }
  }

  /** A non-negative integer below 2^32. */
  uint(v: number): void {
    this.room(5);
    const { buf } = this;
    if (v < 0x80) buf[this.pos++] = v;
    else if (v < 0x100) {
      buf[this.pos] = 0xcc;
      buf[this.pos + 1] = v;
      this.pos += 2;
    } else if (v < 0x10000) {
      buf[this.pos] = 0xcd;
      buf[this.pos + 1] = v >>> 8;
      buf[this.pos + 2] = v & 0xff;
      this.pos += 3;
    } else {
      buf[this.pos] = 0xce;
      this.view.setUint32(this.pos + 1, v);
      this.pos += 5;
    }
  }

  /** Any number, in the smallest form msgpackr would pick (integers beyond 32 bits as float64). */
  number(v: number): void {
    if (v >>> 0 === v) return this.uint(v);
    this.room(9);
    const { buf } = this;
    if ((v | 0) === v) {
      if (v >= -32) buf[this.pos++] = v & 0xff;
      else if (v >= -128) {
        buf[this.pos] = 0xd0;
        buf[this.pos + 1] = v & 0xff;
        this.pos += 2;
      } else if (v >= -32768) {
        buf[this.pos] = 0xd1;
        this.view.setInt16(this.pos + 1, v);
        this.pos += 3;
      } else {
        buf[this.pos] = 0xd2;
        this.view.setInt32(this.pos + 1, v);
        this.pos += 5;
      }
    } else {
      buf[this.pos] = 0xcb;
      this.view.setFloat64(this.pos + 1, v);
      this.pos += 9;
    }
  }

  /** A string: short ASCII inline in JS, anything else through the native UTF-8 encoder. */
  string(s: string): void {
    const n = s.length;
    if (n < 32) {
      this.room(1 + n);
      const { buf } = this;
      let at = this.pos + 1;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[at++] = c;
      }
      if (i === n) {
        buf[this.pos] = 0xa0 | n;
        this.pos = at;
        return;
      }
    }
    this.bigString(s);
  }

  /**
   * A string of any length with a str32 header (non-minimal, still valid msgpack): its UTF-8 length
   * is known only after writing. TextEncoder.encodeInto writes a concatenated (rope) string without
   * flattening it first, which makes it ~2× faster than Buffer#write for the pool.
   */
  bigString(s: string): void {
    const max = s.length * 3;
    this.room(5 + max);
    const { written } = this.#utf8.encodeInto(s, this.buf.subarray(this.pos + 5, this.pos + 5 + max));
    this.buf[this.pos] = 0xdb;
    this.view.setUint32(this.pos + 1, written);
    this.pos += 5 + written;
  }

  /** Any value: primitives inline, everything else (objects, arrays, dates…) through msgpackr. */
  value(v: unknown): void {
    switch (typeof v) {
      case 'string':
        return this.string(v);
      case 'number':
        return this.number(v);
      case 'boolean':
        return this.byte(v ? TRUE : FALSE);
      case 'object':
        if (v === null) return this.byte(NIL);
        break;
      default:
        break;
    }
    const packed = this.#packr.pack(v);
    this.room(packed.length);
    this.buf.set(packed, this.pos);
    this.pos += packed.length;
  }
}

