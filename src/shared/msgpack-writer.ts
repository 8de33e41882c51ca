/**
 * A minimal msgpack writer for the frame encoders in `framing.ts`: appends values to slab Buffers so
 * that a frame stays valid after later encodes. Plain data (see `plainObjectProblem` in
 * validation.ts) is written losslessly by hand — -0 stays -0, BigInt stays BigInt, `undefined`
 * stays `undefined` (msgpackr's fixext encoding of it), Uint8Array as bin — and anything else either
 * goes through msgpackr or, in strict mode, is refused with {@link NotPlainDataError}.
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
/** Nesting the generic writer follows before it gives up (validated input nests far less). */
const MAX_VALUE_DEPTH = 256;

/** Thrown by {@link MsgpackWriter.value} in strict mode on a value that is not plain data. */
export class NotPlainDataError extends Error {}

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

  /**
   * Refuse values that are not plain data ({@link NotPlainDataError}) instead of handing them to
   * msgpackr, which would change them in transit (a Set becomes an array, a function disappears).
   */
  strict = false;

  /**
   * Starts a frame, on a fresh slab if this one is nearly used up — or if an earlier frame grew it
   * beyond the standard size: a huge frame (say a refused 100 MB event) must not stay pinned by the
   * writer. The old slab lives on only as long as the frames cut from it.
   */
  begin(): void {
    if (this.buf.length > SLAB_BYTES) {
      this.buf = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
      this.pos = 0;
    } else if (this.buf.length - this.pos < FRAME_HEADROOM) this.#replace(SLAB_BYTES);
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

  /** Any number, in the smallest form msgpackr would pick (integers beyond 32 bits as float64; -0 as float64). */
  number(v: number): void {
    if (v >>> 0 === v && (v !== 0 || 1 / v > 0)) return this.uint(v);
    this.room(9);
    const { buf } = this;
    if ((v | 0) === v && v !== 0) {
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

  /** Any value: plain data by hand (see the file comment), anything else through msgpackr (or refused when strict). */
  value(v: unknown, depth = 0): void {
    switch (typeof v) {
      case 'string':
        return this.string(v);
      case 'number':
        return this.number(v);
      case 'boolean':
        return this.byte(v ? TRUE : FALSE);
      case 'undefined':
        return this.#undefined();
      case 'bigint':
        if (v >= INT64_MIN && v <= UINT64_MAX) return this.#bigint(v);
        break;
      case 'object': {
        if (v === null) return this.byte(NIL);
        if (depth >= MAX_VALUE_DEPTH) break;
        const proto: unknown = Object.getPrototypeOf(v);
        if (proto === Array.prototype && Array.isArray(v)) return this.#array(v, depth + 1);
        if (proto === Object.prototype || proto === null) return this.#object(v as Record<string, unknown>, depth + 1);
        if (proto === Uint8Array.prototype) return this.bin(v as Uint8Array);
        break;
      }
      default:
        break;
    }
    if (this.strict) throw new NotPlainDataError();
    const packed = this.#packr.pack(v);
    this.room(packed.length);
    this.buf.set(packed, this.pos);
    this.pos += packed.length;
  }

  /** Binary data (msgpack bin 8/16/32). */
  bin(bytes: Uint8Array): void {
    const n = bytes.length;
    this.room(5 + n);
    const { buf } = this;
    if (n < 0x100) {
      buf[this.pos] = 0xc4;
      buf[this.pos + 1] = n;
      this.pos += 2;
    } else if (n < 0x10000) {
      buf[this.pos] = 0xc5;
      buf[this.pos + 1] = n >>> 8;
      buf[this.pos + 2] = n & 0xff;
      this.pos += 3;
    } else {
      buf[this.pos] = 0xc6;
      this.view.setUint32(this.pos + 1, n);
      this.pos += 5;
    }
    buf.set(bytes, this.pos);
    this.pos += n;
  }

  #undefined(): void {
    // msgpackr's own encoding of undefined (fixext 1, type 0), which msgpackr decodes as undefined.
    this.room(3);
    this.buf[this.pos] = 0xd4;
    this.buf[this.pos + 1] = 0;
    this.buf[this.pos + 2] = 0;
    this.pos += 3;
  }

  #bigint(v: bigint): void {
    // Always 64-bit, as msgpackr writes BigInt: it decodes int64/uint64 as BigInt, so the type survives.
    this.room(9);
    if (v < 0n) {
      this.buf[this.pos] = 0xd3;
      this.view.setBigInt64(this.pos + 1, v);
    } else {
      this.buf[this.pos] = 0xcf;
      this.view.setBigUint64(this.pos + 1, v);
    }
    this.pos += 9;
  }

  #array(v: readonly unknown[], depth: number): void {
    const n = v.length;
    this.arrayHeader(n);
    for (let i = 0; i < n; i++) this.value(v[i], depth);
  }

  #object(v: Record<string, unknown>, depth: number): void {
    // The key count is known only after the walk: reserve a map32 header (valid msgpack) and patch it.
    this.room(5);
    const header = this.mark();
    this.pos += 5;
    let n = 0;
    for (const key in v) {
      this.string(key);
      this.value(v[key], depth);
      n++;
    }
    const at = this.start + header;
    this.buf[at] = 0xdf;
    this.view.setUint32(at + 1, n);
  }
}

const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;
