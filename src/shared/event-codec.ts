/**
 * The event codec: page-change events as they travel inside frames. Event batches — the hot path,
 * millions a second — are written by hand in a columnar layout ({@link EventBatchWriter}); they are
 * still plain msgpack, so any msgpack decoder reads them, and {@link readEvents} turns the decoded
 * payload back into {@link PageChangeEvent}s. A single event re-sent in a dispatch frame travels as
 * a positional tuple ({@link eventToTuple}).
 *
 * Event payload (an EVENTS frame's third element), one column per field over the batch's `n`
 * events; column positions are named by `EventColumn` (protocol.ts):
 * ```
 *  [0]  n
 *  [1]  kind      uint | uint[n]            index in PAGE_CHANGE_KINDS; a scalar when all events share it
 *  [2]  pageId    uint[n]                   length of the event's slice of the pool
 *  [3]  sourceId  uint | uint[n] | [uint[n]]  index in the dictionary; a scalar when all events share
 *                                           it; or, wrapped in a 1-element array, pool slice lengths
 *  [4]  dataType  nil | uint | (uint|nil)[n] | [(uint|nil)[n]]   dictionary indexes or pool slices
 *                                           (as sourceId); nil when no event has one
 *  [5]  scopeId   nil | uint | (uint|nil)[n] | [(uint|nil)[n]]
 *  [6]  related   nil | [count: uint | (uint|nil)[n], lengths: uint[]]   pool slices, flattened
 *  [7]  edgeType  nil | uint | (uint|nil)[n] | [(uint|nil)[n]]
 *  [8]  reason    nil | (uint|nil)[n]       pool slice lengths
 *  [9]  editDiff  nil | (uint|nil)[n]
 *  [10] extra     nil | (nil | [shape, ...values])[n]   values in the shape's key order; a value the
 *                                           shape marks as pooled is a string's pool slice length
 *  [11] ts        nil | number | (number|nil)[n]
 *  [12] shapes    [keyIndex, pooled: bool, keyIndex, pooled, …][]   the extra objects' key lists
 *  [13] dict      string[]                  strings that repeat across events: sourceId, dataType,
 *                                           scopeId, edgeType, extra keys
 *  [14] pool      string                    every other string, concatenated in the order above;
 *                                           slice lengths count UTF-16 code units
 * ```
 * Dictionary or pool, per column and frame: a dictionary pays when values repeat within the frame.
 * When they mostly do not (tens of thousands of distinct sources, types or scopes: nearly every
 * string is new to its frame), building it is mostly `Map.set` plus one small string write per
 * entry — so a column whose previous frame was mostly distinct goes to the pool instead (one rope
 * append per value, written with the rest of the pool in one native UTF-8 write), and is tried with
 * the dictionary again every {@link RETRY_DICTIONARY_EVERY} frames. The reader needs no state for
 * either form.
 * Why this shape (measured on the project's 2-core machines, µs per event for a realistic 7-field
 * event with a 2-key `extra`; see bench/RESULTS.md): msgpackr over positional tuples costs ~0.7
 * to encode and ~0.45 to decode. Field names are never written; repeated strings are written once
 * per frame; a column whose value is the same for every event is one scalar; the unique strings go
 * out as one string — one native UTF-8 write on the way in and one native string on the way out,
 * sliced in JS — instead of one per field; `extra` objects are rebuilt by a per-shape literal
 * constructor (fast-mode objects, no per-key dictionary inserts). Encode ≈ 0.2, decode ≈ 0.2.

 */
import { ProtocolError, ValidationError } from './errors.js';
import { PAGE_CHANGE_KINDS, type PageChangeEvent, type PageChangeKind } from './event-kinds.js';
import { FALSE, type MsgpackWriter, NIL, NotPlainDataError, TRUE } from './msgpack-writer.js';
import { EventColumn } from './protocol.js';
import { formatPath, plainObjectProblem } from './validation.js';

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

// ------------------------------------------------------------------------------------------------
// Encoding

/** Distinct `extra` key lists remembered per thread (encoder trie, decoder constructors). */
const MAX_SHAPES = 4096;

/**
 * A dictionary column whose values were at least this distinct in its last dictionary frame
 * (distinct strings ÷ values) goes to the pool; see the file comment.
 */
const POOL_WHEN_DISTINCT = 0.5;
/** A pooled column is tried with the dictionary again every this many frames. */
const RETRY_DICTIONARY_EVERY = 32;
/** Columns below this many values always use the dictionary (too few to tell). */
const MIN_VALUES_TO_POOL = 32;

/** A node of the `extra` shape trie: the key list that led here and whether each value is pooled. */
interface ShapeNode {
  readonly pooledChildren: Map<string, ShapeNode>;
  readonly otherChildren: Map<string, ShapeNode>;
  readonly keys: readonly string[];
  readonly pooled: readonly boolean[];
  /** The frame this node was last used in, and its index in that frame's shape table. */
  frame: number;
  index: number;
}

function shapeNode(keys: readonly string[], pooled: readonly boolean[]): ShapeNode {
  return { pooledChildren: new Map(), otherChildren: new Map(), keys, pooled, frame: 0, index: -1 };
}

/** The columns of one batch, gathered in one pass with plain property reads. Reused across frames. */
class Columns {
  n = 0;
  readonly kind: number[] = [];
  readonly pageId: string[] = [];
  readonly sourceId: string[] = [];
  readonly dataType: (string | undefined)[] = [];
  readonly scopeId: (string | undefined)[] = [];
  readonly related: (readonly string[] | undefined)[] = [];
  readonly edgeType: (string | undefined)[] = [];
  readonly reason: (string | undefined)[] = [];
  readonly editDiff: (string | undefined)[] = [];
  readonly extra: (Record<string, unknown> | undefined)[] = [];
  readonly ts: (number | undefined)[] = [];
  /** Bit per optional column: at least one event has the field. */
  present = 0;

  /**
   * Drops the references to the last batch's strings and objects (a 100 MB string must not stay
   * pinned). `everything`: after a failed gather, whose `present` bits are not set yet.
   */
  clear(everything: boolean): void {
    const n = this.n;
    const present = everything ? 0xff : this.present;
    this.pageId.fill('', 0, n);
    this.sourceId.fill('', 0, n);
    // Only the columns this batch used hold anything of it.
    if ((present & HAS.dataType) !== 0) this.dataType.fill(undefined, 0, n);
    if ((present & HAS.scopeId) !== 0) this.scopeId.fill(undefined, 0, n);
    if ((present & HAS.related) !== 0) this.related.fill(undefined, 0, n);
    if ((present & HAS.edgeType) !== 0) this.edgeType.fill(undefined, 0, n);
    if ((present & HAS.reason) !== 0) this.reason.fill(undefined, 0, n);
    if ((present & HAS.editDiff) !== 0) this.editDiff.fill(undefined, 0, n);
    if ((present & HAS.extra) !== 0) this.extra.fill(undefined, 0, n);
    this.n = 0;
    this.present = 0;
  }
}

const HAS = {
  dataType: 1,
  scopeId: 2,
  related: 4,
  edgeType: 8,
  reason: 16,
  editDiff: 32,
  extra: 64,
  ts: 128,
} as const;

function invalid(index: number, field: string, message: string): ValidationError {
  return new ValidationError(`events[${index}].${field}`, message);
}

/** Fills `c` from `events`, checking just enough type to guarantee a well-formed frame. */
function gather(c: Columns, events: readonly PageChangeEvent[]): void {
  const n = events.length;
  c.n = n;
  let present = 0;
  for (let i = 0; i < n; i++) {
    const e = events[i]!;
    if (typeof e !== 'object' || e === null) throw new ValidationError(`events[${i}]`, 'must be an event object');
    const kind = KIND_CODE[e.kind];
    if (kind === undefined) throw invalid(i, 'kind', `must be one of ${PAGE_CHANGE_KINDS.join(', ')}`);
    c.kind[i] = kind;
    const { pageId, sourceId, dataType, scopeId, related, edgeType, reason, editDiff, extra, ts } = e;
    if (typeof pageId !== 'string') throw invalid(i, 'pageId', 'must be a string');
    c.pageId[i] = pageId;
    if (typeof sourceId !== 'string') throw invalid(i, 'sourceId', 'must be a string');
    c.sourceId[i] = sourceId;
    // Optional fields: null is taken as absent, as in eventToTuple.
    if (dataType != null) {
      if (typeof dataType !== 'string') throw invalid(i, 'dataType', 'must be a string');
      present |= HAS.dataType;
    }
    c.dataType[i] = dataType ?? undefined;
    if (scopeId != null) {
      if (typeof scopeId !== 'string') throw invalid(i, 'scopeId', 'must be a string');
      present |= HAS.scopeId;
    }
    c.scopeId[i] = scopeId ?? undefined;
    if (related != null) {
      if (!Array.isArray(related)) throw invalid(i, 'related', 'must be an array of strings');
      for (let j = 0; j < related.length; j++) if (typeof related[j] !== 'string') throw invalid(i, `related[${j}]`, 'must be a string');
      present |= HAS.related;
    }
    c.related[i] = related ?? undefined;
    if (edgeType != null) {
      if (typeof edgeType !== 'string') throw invalid(i, 'edgeType', 'must be a string');
      present |= HAS.edgeType;
    }
    c.edgeType[i] = edgeType ?? undefined;
    if (reason != null) {
      if (typeof reason !== 'string') throw invalid(i, 'reason', 'must be a string');
      present |= HAS.reason;
    }
    c.reason[i] = reason ?? undefined;
    if (editDiff != null) {
      if (typeof editDiff !== 'string') throw invalid(i, 'editDiff', 'must be a string');
      present |= HAS.editDiff;
    }
    c.editDiff[i] = editDiff ?? undefined;
    if (extra != null) {
      if (typeof extra !== 'object' || Array.isArray(extra)) throw invalid(i, 'extra', 'must be an object');
      const proto: unknown = Object.getPrototypeOf(extra);
      if (proto !== Object.prototype && proto !== null) throw invalid(i, 'extra', 'must be a plain object');
      present |= HAS.extra;
    }
    c.extra[i] = extra ?? undefined;
    if (ts != null) {
      if (typeof ts !== 'number') throw invalid(i, 'ts', 'must be a number');
      present |= HAS.ts;
    }
    c.ts[i] = ts ?? undefined;
  }
  c.present = present;
}

/**
 * Writes the payload of an event frame (the columns above) into a {@link MsgpackWriter}. One per
 * encoder: it keeps the `extra` shape trie between frames and reuses its column arrays.
 */
export class EventBatchWriter {
  readonly #w: MsgpackWriter;
  readonly #columns = new Columns();
  /** This frame's dictionary: string → index, and the strings in index order. */
  readonly #dict = new Map<string, number>();
  readonly #dictList: string[] = [];
  /** This frame's pool: the unique strings, concatenated (a rope until it is written). */
  #pool = '';
  #frame = 0;
  #shapeRoot = shapeNode([], []);
  #shapeCount = 0;
  readonly #shapes: ShapeNode[] = [];
  /**
   * Per dictionary column (sourceId, dataType, scopeId, edgeType): the frame until which it goes to
   * the pool (0: the dictionary).
   */
  readonly #pooledUntil = [0, 0, 0, 0];

  constructor(w: MsgpackWriter) {
    this.#w = w;
  }

  /**
   * Writes `events` as the payload array. Events are not schema-validated here (that is the
   * boundary's job), but a field of the wrong type — or an `extra` that is not plain data, with the
   * writer in strict mode — throws ValidationError naming it (`events[3].pageId`) rather than
   * producing a corrupt frame.
   */
  write(events: readonly PageChangeEvent[]): void {
    const c = this.#columns;
    const w = this.#w;
    let gathered = false;
    try {
      gather(c, events);
      gathered = true;
      this.#dict.clear();
      this.#dictList.length = 0;
      this.#pool = '';
      this.#shapes.length = 0;
      this.#frame++;
      // The columns in EventColumn order (the decoder reads them by the same names).
      w.arrayHeader(EventColumn.LENGTH);
      w.uint(c.n); // COUNT
      this.#kindColumn(); // KIND
      this.#pageIdColumn(); // PAGE_ID
      this.#refColumn(c.sourceId, true, 0); // SOURCE_ID
      this.#refColumn(c.dataType, (c.present & HAS.dataType) !== 0, 1); // DATA_TYPE
      this.#refColumn(c.scopeId, (c.present & HAS.scopeId) !== 0, 2); // SCOPE_ID
      this.#relatedColumn(); // RELATED
      this.#refColumn(c.edgeType, (c.present & HAS.edgeType) !== 0, 3); // EDGE_TYPE
      this.#pooledColumn(c.reason, (c.present & HAS.reason) !== 0); // REASON
      this.#pooledColumn(c.editDiff, (c.present & HAS.editDiff) !== 0); // EDIT_DIFF
      this.#extraColumn(); // EXTRA
      this.#tsColumn(); // TS
      // SHAPES: the shape table references the dictionary, so it goes first; the pool is complete last.
      const shapes = this.#shapes;
      w.arrayHeader(shapes.length);
      for (const { keys, pooled } of shapes) {
        w.arrayHeader(keys.length * 2);
        for (let j = 0; j < keys.length; j++) {
          w.uint(this.#ref(keys[j]!));
          w.byte(pooled[j] ? TRUE : FALSE);
        }
      }
      const dict = this.#dictList; // DICT
      w.arrayHeader(dict.length);
      for (let i = 0; i < dict.length; i++) w.string(dict[i]!);
      w.bigString(this.#pool); // POOL
    } catch (error) {
      if (error instanceof NotPlainDataError) throw this.#notPlain();
      throw error;
    } finally {
      this.#pool = '';
      this.#dict.clear();
      this.#dictList.length = 0;
      c.clear(!gathered);
    }
  }

  /** The ValidationError for an `extra` the writer refused, naming the nested field. */
  #notPlain(): ValidationError {
    const { n, extra } = this.#columns;
    for (let i = 0; i < n; i++) {
      const problem = extra[i] === undefined ? undefined : plainObjectProblem(extra[i]);
      if (problem !== undefined) return new ValidationError(formatPath(`events[${i}].extra`, problem.path), problem.message);
    }
    return new ValidationError('events', 'extra must be plain data');
  }

  #ref(s: string): number {
    let index = this.#dict.get(s);
    if (index === undefined) {
      index = this.#dictList.length;
      this.#dict.set(s, index);
      this.#dictList.push(s);
    }
    return index;
  }

  #kindColumn(): void {
    const { n, kind } = this.#columns;
    const w = this.#w;
    let same = true;
    for (let i = 1; i < n && same; i++) same = kind[i] === kind[0];
    if (same && n > 0) return w.uint(kind[0]!);
    w.arrayHeader(n);
    for (let i = 0; i < n; i++) w.uint(kind[i]!);
  }

  #pageIdColumn(): void {
    const { n, pageId } = this.#columns;
    const w = this.#w;
    w.arrayHeader(n);
    let pool = this.#pool;
    for (let i = 0; i < n; i++) {
      const s = pageId[i]!;
      pool += s;
      w.uint(s.length);
    }
    this.#pool = pool;
  }

  /**
   * A dictionary column: nil if no event has the field, a scalar if all share one value; or, while
   * its values are mostly distinct, pool slices (see the file comment). `column`: its slot in
   * #pooledUntil.
   */
  #refColumn(values: readonly (string | undefined)[], present: boolean, column: number): void {
    const w = this.#w;
    if (!present) return w.byte(NIL);
    const n = this.#columns.n;
    if (this.#pooledUntil[column]! > this.#frame) return this.#pooledRefColumn(values, n);
    const mark = w.mark();
    const entries = this.#dictList.length;
    w.arrayHeader(n);
    // Consecutive events mostly carry the very same string: compare before hashing it again.
    let last: string | undefined;
    let lastRef = -1;
    let same = true;
    let count = 0;
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (v === undefined) {
        same = false;
        w.byte(NIL);
        continue;
      }
      count++;
      if (v !== last) {
        if (last !== undefined) same = false;
        last = v;
        lastRef = this.#ref(v);
      }
      w.uint(lastRef);
    }
    if (same && lastRef >= 0) {
      w.rewind(mark);
      w.uint(lastRef);
    }
    if (count >= MIN_VALUES_TO_POOL && this.#dictList.length - entries >= count * POOL_WHEN_DISTINCT) this.#pooledUntil[column] = this.#frame + RETRY_DICTIONARY_EVERY;
  }

  /** A dictionary column written as pool slices: `[lengths]`, nil for an event without the field. */
  #pooledRefColumn(values: readonly (string | undefined)[], n: number): void {
    this.#w.byte(0x91);
    this.#sliceLengths(values, n);
  }

  /** A pooled-string column: nil if no event has the field, else each event's slice length. */
  #pooledColumn(values: readonly (string | undefined)[], present: boolean): void {
    if (!present) return this.#w.byte(NIL);
    this.#sliceLengths(values, this.#columns.n);
  }

  /** `n` values appended to the frame's pool, written as an array of their lengths (nil for none). */
  #sliceLengths(values: readonly (string | undefined)[], n: number): void {
    const w = this.#w;
    w.arrayHeader(n);
    let pool = this.#pool;
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (v === undefined) w.byte(NIL);
      else {
        pool += v;
        w.uint(v.length);
      }
    }
    this.#pool = pool;
  }

  #relatedColumn(): void {
    const w = this.#w;
    const { n, related, present } = this.#columns;
    if ((present & HAS.related) === 0) return w.byte(NIL);
    w.byte(0x92);
    let same = true;
    let total = 0;
    const first = related[0]?.length ?? -1;
    for (let i = 0; i < n; i++) {
      const r = related[i];
      if ((r?.length ?? -1) !== first) same = false;
      if (r !== undefined) total += r.length;
    }
    if (same) w.uint(first);
    else {
      w.arrayHeader(n);
      for (let i = 0; i < n; i++) {
        const r = related[i];
        if (r === undefined) w.byte(NIL);
        else w.uint(r.length);
      }
    }
    w.arrayHeader(total);
    let pool = this.#pool;
    for (let i = 0; i < n; i++) {
      const r = related[i];
      if (r === undefined) continue;
      for (let j = 0; j < r.length; j++) {
        const s = r[j]!;
        pool += s;
        w.uint(s.length);
      }
    }
    this.#pool = pool;
  }

  #extraColumn(): void {
    const w = this.#w;
    const { n, extra, present } = this.#columns;
    if ((present & HAS.extra) === 0) return w.byte(NIL);
    w.arrayHeader(n);
    for (let i = 0; i < n; i++) {
      const x = extra[i];
      if (x === undefined) {
        w.byte(NIL);
        continue;
      }
      const keys = Object.keys(x);
      w.arrayHeader(keys.length + 1);
      // The shape is known only after the values are written: reserve a uint32 (valid msgpack).
      w.room(5);
      const slot = w.mark();
      w.pos += 5;
      let node = this.#shapeRoot;
      for (let j = 0; j < keys.length; j++) {
        const key = keys[j]!;
        const v = x[key];
        const pooled = typeof v === 'string';
        if (pooled) {
          this.#pool += v;
          w.uint(v.length);
        } else w.value(v);
        node = this.#child(node, key, pooled);
      }
      if (node.frame !== this.#frame) {
        node.frame = this.#frame;
        node.index = this.#shapes.length;
        this.#shapes.push(node);
      }
      const at = w.start + slot;
      w.buf[at] = 0xce;
      w.view.setUint32(at + 1, node.index);
    }
  }

  #child(node: ShapeNode, key: string, pooled: boolean): ShapeNode {
    const children = pooled ? node.pooledChildren : node.otherChildren;
    let child = children.get(key);
    if (child === undefined) {
      child = shapeNode([...node.keys, key], [...node.pooled, pooled]);
      // Past the bound, shapes are still correct but no longer remembered between frames.
      if (this.#shapeCount < MAX_SHAPES) {
        children.set(key, child);
        this.#shapeCount++;
      }
    }
    return child;
  }

  #tsColumn(): void {
    const w = this.#w;
    const { n, ts, present } = this.#columns;
    if ((present & HAS.ts) === 0) return w.byte(NIL);
    let same = true;
    for (let i = 1; i < n && same; i++) same = ts[i] === ts[0];
    if (same) return w.number(ts[0]!);
    w.arrayHeader(n);
    for (let i = 0; i < n; i++) {
      const t = ts[i];
      if (t === undefined) w.byte(NIL);
      else w.number(t);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Decoding

/** Read position in a frame's pool. */
interface PoolCursor {
  readonly pool: string;
  at: number;
}

/** Builds one `extra` object from its encoded entry `[shape, ...values]`. */
type ExtraBuilder = (entry: readonly unknown[], cursor: PoolCursor) => Record<string, unknown>;

const builders = new Map<string, ExtraBuilder>();

function builderFor(keys: readonly string[], pooled: readonly boolean[]): ExtraBuilder {
  let id = '';
  for (let i = 0; i < keys.length; i++) id += (pooled[i] ? '\u0001' : '\u0002') + keys[i]!;
  let builder = builders.get(id);
  if (builder === undefined) {
    if (builders.size >= MAX_SHAPES) builders.clear();
    builder = makeBuilder(keys, pooled);
    builders.set(id, builder);
  }
  return builder;
}

/**
 * A literal per shape (`{"value": e[1], "relativePath": slice}`) makes fast-mode objects in one
 * allocation, ~3× cheaper than adding keys one by one. Keys are JSON-quoted, so any key is safe;
 * `__proto__` (which a literal would treat as the prototype) and runtimes that forbid code
 * generation use the generic path.
 */
function makeBuilder(keys: readonly string[], pooled: readonly boolean[]): ExtraBuilder {
  if (!keys.includes('__proto__')) {
    const fields = keys.map((key, i) => `${JSON.stringify(key)}: ${pooled[i] ? `c.pool.substring(c.at, (c.at += e[${i + 1}]))` : `e[${i + 1}]`}`);
    try {
      return new Function('e', 'c', `return { ${fields.join(', ')} };`) as ExtraBuilder;
    } catch {
      // Code generation from strings is disallowed here: fall through.
    }
  }
  return (entry, cursor) => {
    const object: Record<string, unknown> = {};
    for (let i = 0; i < keys.length; i++) {
      const value = pooled[i] ? cursor.pool.substring(cursor.at, (cursor.at += entry[i + 1] as number)) : entry[i + 1];
      Object.defineProperty(object, keys[i]!, { value, enumerable: true, writable: true, configurable: true });
    }
    return object;
  };
}

/** A dictionary column as read: nil, a scalar index, indexes, or pool slice lengths wrapped in a 1-element array. */
type RefColumn = null | number | readonly (number | null)[] | readonly [readonly (number | null)[]];

/** Whether a dictionary column holds pool slice lengths (`[lengths]`) rather than dictionary indexes. */
function isPooled(column: unknown, n: number): column is readonly [readonly (number | null)[]] {
  return Array.isArray(column) && column.length === 1 && Array.isArray(column[0]) && column[0].length === n;
}

function corrupt(what: string): ProtocolError {
  return new ProtocolError(`corrupt event frame: ${what}`);
}

function checkColumn(column: unknown, n: number, name: string, scalar: boolean, nullable: boolean, poolable = false): void {
  if (column === null ? nullable : Array.isArray(column) ? column.length === n || (poolable && isPooled(column, n)) : scalar && typeof column === 'number') return;
  throw corrupt(`bad ${name} column`);
}

/**
 * The events of a frame built by {@link FrameEncoder.encodeEvents} (pass the frame's third field).
 * Also accepts an array of {@link eventToTuple} tuples. Throws ProtocolError on a malformed payload.
 */
export function readEvents(payload: unknown): PageChangeEvent[] {
  if (!Array.isArray(payload)) throw corrupt('events are not an array');
  if (payload.length === 0 || Array.isArray(payload[0])) return payload.map(tupleToEvent);
  if (payload.length !== EventColumn.LENGTH) throw corrupt(`expected ${EventColumn.LENGTH} columns, got ${payload.length}`);
  const n = payload[EventColumn.COUNT] as number;
  const kind = payload[EventColumn.KIND] as number | readonly number[];
  const pageId = payload[EventColumn.PAGE_ID] as readonly number[];
  const sourceId = payload[EventColumn.SOURCE_ID] as number | readonly number[];
  const related = payload[EventColumn.RELATED] as null | [number | readonly (number | null)[], readonly number[]];
  const reason = payload[EventColumn.REASON] as null | readonly (number | null)[];
  const editDiff = payload[EventColumn.EDIT_DIFF] as null | readonly (number | null)[];
  const extra = payload[EventColumn.EXTRA] as null | readonly (readonly unknown[] | null)[];
  const ts = payload[EventColumn.TS] as null | number | readonly (number | null)[];
  const shapes = payload[EventColumn.SHAPES] as readonly (readonly (number | boolean)[])[];
  const dict = payload[EventColumn.DICT] as string[];
  const pool = payload[EventColumn.POOL] as string;
  if (!Number.isInteger(n) || n < 0) throw corrupt('bad count');
  checkColumn(kind, n, 'kind', true, false);
  checkColumn(pageId, n, 'pageId', false, false);
  checkColumn(sourceId, n, 'sourceId', true, false, true);
  for (const [index, name] of [[EventColumn.DATA_TYPE, 'dataType'], [EventColumn.SCOPE_ID, 'scopeId'], [EventColumn.EDGE_TYPE, 'edgeType']] as const) checkColumn(payload[index], n, name, true, true, true);
  checkColumn(reason, n, 'reason', false, true);
  checkColumn(editDiff, n, 'editDiff', false, true);
  checkColumn(extra, n, 'extra', false, true);
  checkColumn(ts, n, 'ts', true, true);
  if (related !== null && (!Array.isArray(related) || related.length !== 2 || !Array.isArray(related[1]))) throw corrupt('bad related column');
  if (!Array.isArray(shapes) || !Array.isArray(dict) || typeof pool !== 'string') throw corrupt('bad string tables');

  const builds = new Array<ExtraBuilder>(shapes.length);
  for (let i = 0; i < shapes.length; i++) {
    const spec = shapes[i]!;
    const keys: string[] = [];
    const pooled: boolean[] = [];
    for (let j = 0; j < spec.length; j += 2) {
      const key = dict[spec[j] as number];
      if (key === undefined) throw corrupt('bad shape');
      keys.push(key);
      pooled.push(spec[j + 1] === true);
    }
    builds[i] = builderFor(keys, pooled);
  }

  const out = new Array<PageChangeEvent>(n);
  const kindAll = typeof kind === 'number' ? PAGE_CHANGE_KINDS[kind] : undefined;
  let at = 0;
  if (isPooled(sourceId, n)) {
    // The sources' slices follow every page id's.
    const lengths = sourceId[0];
    let from = 0;
    for (let i = 0; i < n; i++) from += pageId[i]!;
    for (let i = 0; i < n; i++) {
      const kindName = kindAll ?? PAGE_CHANGE_KINDS[(kind as readonly number[])[i]!];
      const length = lengths[i];
      if (kindName === undefined || typeof length !== 'number') throw corrupt(`bad kind or sourceId of event ${i}`);
      const end = at + pageId[i]!;
      out[i] = { kind: kindName, pageId: pool.substring(at, end), sourceId: pool.substring(from, (from += length)) };
      at = end;
    }
    at = from;
  } else {
    const sourceAll = typeof sourceId === 'number' ? dict[sourceId] : undefined;
    for (let i = 0; i < n; i++) {
      const kindName = kindAll ?? PAGE_CHANGE_KINDS[(kind as readonly number[])[i]!];
      const source = sourceAll ?? dict[(sourceId as readonly number[])[i]!];
      if (kindName === undefined || source === undefined) throw corrupt(`bad kind or sourceId of event ${i}`);
      const end = at + pageId[i]!;
      out[i] = { kind: kindName, pageId: pool.substring(at, end), sourceId: source };
      at = end;
    }
  }
  // Optional fields are added column by column, in EVENT_FIELDS order: events with the same fields
  // end up with the same hidden class.
  at = setRefs(out, payload[EventColumn.DATA_TYPE] as RefColumn, dict, 'dataType', pool, at);
  at = setRefs(out, payload[EventColumn.SCOPE_ID] as RefColumn, dict, 'scopeId', pool, at);
  if (related !== null) {
    const [count, lengths] = related;
    let k = 0;
    for (let i = 0; i < n; i++) {
      const c = typeof count === 'number' ? count : count[i];
      if (c == null) continue;
      const list = new Array<string>(c);
      for (let j = 0; j < c; j++) {
        const end = at + lengths[k++]!;
        list[j] = pool.substring(at, end);
        at = end;
      }
      out[i]!.related = list;
    }
  }
  at = setRefs(out, payload[EventColumn.EDGE_TYPE] as RefColumn, dict, 'edgeType', pool, at);
  if (reason !== null) {
    for (let i = 0; i < n; i++) {
      const length = reason[i];
      if (length == null) continue;
      out[i]!.reason = pool.substring(at, (at += length));
    }
  }
  if (editDiff !== null) {
    for (let i = 0; i < n; i++) {
      const length = editDiff[i];
      if (length == null) continue;
      out[i]!.editDiff = pool.substring(at, (at += length));
    }
  }
  if (extra !== null) {
    const cursor: PoolCursor = { pool, at };
    for (let i = 0; i < n; i++) {
      const entry = extra[i];
      if (entry == null) continue;
      const build = builds[entry[0] as number];
      if (build === undefined) throw corrupt('unknown extra shape');
      out[i]!.extra = build(entry, cursor);
    }
    at = cursor.at;
  }
  if (typeof ts === 'number') {
    for (let i = 0; i < n; i++) out[i]!.ts = ts;
  } else if (ts !== null) {
    for (let i = 0; i < n; i++) {
      const t = ts[i];
      if (t != null) out[i]!.ts = t;
    }
  }
  if (at !== pool.length) throw corrupt('string pool length mismatch');
  return out;
}

/** Sets a dictionary column's field on the events; returns the pool position after its slices (if pooled). */
function setRefs(out: PageChangeEvent[], column: RefColumn, dict: readonly string[], field: 'dataType' | 'scopeId' | 'edgeType', pool: string, at: number): number {
  if (column === null) return at;
  if (typeof column === 'number') {
    const value = dict[column];
    if (value === undefined) throw corrupt(`bad ${field} reference`);
    for (let i = 0; i < out.length; i++) out[i]![field] = value;
    return at;
  }
  if (isPooled(column, out.length)) {
    const lengths = column[0];
    for (let i = 0; i < out.length; i++) {
      const length = lengths[i];
      if (length == null) continue;
      if (typeof length !== 'number') throw corrupt(`bad ${field} of event ${i}`);
      out[i]![field] = pool.substring(at, (at += length));
    }
    return at;
  }
  const refs = column as readonly (number | null)[];
  for (let i = 0; i < out.length; i++) {
    const ref = refs[i];
    if (ref == null) continue;
    const value = dict[ref];
    if (value === undefined) throw corrupt(`bad ${field} reference`);
    out[i]![field] = value;
  }
  return at;
}

