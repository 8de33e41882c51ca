/**
 * The one bridge from zod to {@link ValidationError}: every boundary validates with a schema and
 * reports the first offending field as a dotted path, prefixed with the argument's own name.
 */
import type { z } from 'zod';
import { ValidationError, type ValidationIssue } from './errors.js';

/** Formats a zod issue path (`['predicate', 'anyOf', 0, 'kinds']`) as `predicate.anyOf[0].kinds`. */
export function formatPath(prefix: string, path: readonly PropertyKey[]): string {
  let out = prefix;
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

/** Parses `value` with `schema`; on failure throws a ValidationError naming the field under `name`. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, name: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues: ValidationIssue[] = result.error.issues.map((issue) => {
    // An unknown key is a field of its own: name it (`options.ringbytes`), not its parent object.
    const keys = issue.code === 'unrecognized_keys' ? (issue as { keys?: string[] }).keys : undefined;
    const path = keys !== undefined && keys.length > 0 ? [...issue.path, keys[0]!] : issue.path;
    return { path: formatPath(name, path), message: issue.message };
  });
  const first = issues[0] ?? { path: name, message: 'invalid value' };
  throw new ValidationError(first.path, first.message, { issues, cause: result.error });
}

// ------------------------------------------------------------------------------------------------
// Plain data: what can cross a thread (msgpack) unchanged.

/** Deepest nesting of objects and arrays in plain data (the outermost object is level 1). */
export const MAX_PLAIN_DEPTH = 64;

const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

/** Message for a string with a lone surrogate: msgpack's UTF-8 would turn it into U+FFFD. */
export const ILL_FORMED_STRING = 'must be well-formed UTF-16 (a lone surrogate would not survive the trip between threads)';

/** Where plain data is not plain: the path below the value checked (keys and indexes) and why. */
export interface PlainDataProblem {
  readonly path: (string | number)[];
  readonly message: string;
}

const LEAF = 0;
const CONTAINER = 1;
const BAD = 2;
let badMessage = '';

function describe(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === 'string' && name !== '' ? `a ${name}` : 'an object with a custom prototype';
}

/** LEAF, CONTAINER (a plain object or array to look into) or BAD (with `badMessage` set). */
function classify(v: unknown): number {
  switch (typeof v) {
    case 'number':
    case 'boolean':
    case 'undefined':
      return LEAF;
    case 'string':
      if (v.isWellFormed()) return LEAF;
      badMessage = ILL_FORMED_STRING;
      return BAD;
    case 'bigint':
      if (v >= INT64_MIN && v <= UINT64_MAX) return LEAF;
      badMessage = 'BigInt beyond 64 bits cannot be carried';
      return BAD;
    case 'object': {
      if (v === null) return LEAF;
      const proto: unknown = Object.getPrototypeOf(v);
      if (proto === Object.prototype || proto === null) return CONTAINER;
      if (proto === Array.prototype && Array.isArray(v)) return CONTAINER;
      if (proto === Uint8Array.prototype) return LEAF;
      break;
    }
    default:
      break;
  }
  badMessage = `must be plain data (JSON-like values, plain objects, arrays, Uint8Array, 64-bit BigInt), not ${describe(v)}`;
  return BAD;
}

/**
 * The containers met so far in one check, breadth first: each with its parent's entry and its key
 * there (for the path of a problem and for cycle detection). One instance is reused; a re-entrant
 * check (a getter that validates) gets its own.
 */
class Walk {
  readonly value: object[] = [];
  readonly parent: number[] = [];
  readonly key: (string | number)[] = [];
  readonly depth: number[] = [];
  n = 0;
  busy = false;

  push(value: object, parent: number, key: string | number, depth: number): void {
    const i = this.n++;
    this.value[i] = value;
    this.parent[i] = parent;
    this.key[i] = key;
    this.depth[i] = depth;
  }

  path(at: number, key: string | number): (string | number)[] {
    const path = [key];
    for (let i = at; i > 0; i = this.parent[i]!) path.unshift(this.key[i]!);
    return path;
  }

  /** A problem with the child `key` of container `at`, or undefined if the child is fine (pushed if a container). */
  child(at: number, key: string | number, v: unknown): PlainDataProblem | undefined {
    const kind = classify(v);
    if (kind === LEAF) return undefined;
    if (kind === BAD) return { path: this.path(at, key), message: badMessage };
    const depth = this.depth[at]! + 1;
    for (let i = at; i >= 0; i = this.parent[i]!) {
      if (this.value[i] === v) return { path: this.path(at, key), message: 'is a circular reference (plain data must be a tree)' };
    }
    if (depth > MAX_PLAIN_DEPTH) return { path: this.path(at, key), message: `nests deeper than ${MAX_PLAIN_DEPTH} levels` };
    this.push(v as object, at, key, depth);
    return undefined;
  }

  run(root: object): PlainDataProblem | undefined {
    this.n = 0;
    this.push(root, -1, '', 1);
    try {
      for (let at = 0; at < this.n; at++) {
        const container = this.value[at] as Record<string, unknown>;
        if (Array.isArray(container)) {
          for (let j = 0; j < container.length; j++) {
            const v: unknown = container[j];
            // Numbers first: the common case costs one typeof.
            if (typeof v === 'number') continue;
            const problem = this.child(at, j, v);
            if (problem !== undefined) return problem;
          }
          continue;
        }
        for (const key in container) {
          if (key === '__proto__') return { path: this.path(at, key), message: 'is not allowed as a key (it would become the prototype on the other side)' };
          if (!key.isWellFormed()) return { path: this.path(at, key), message: `key ${ILL_FORMED_STRING}` };
          const v = container[key];
          if (typeof v === 'number') continue;
          const problem = this.child(at, key, v);
          if (problem !== undefined) return problem;
        }
      }
      return undefined;
    } finally {
      // Do not keep the caller's objects alive.
      for (let i = 0; i < this.n; i++) this.value[i] = undefined as unknown as object;
      this.n = 0;
    }
  }
}

const sharedWalk = new Walk();

/**
 * Checks that `value` is a plain object made of plain data, which msgpack carries between threads
 * unchanged: strings (well-formed UTF-16), numbers (any, including NaN, ±Infinity and -0), booleans,
 * null, undefined, BigInt within 64 bits, Uint8Array, arrays and plain objects (prototype
 * `Object.prototype` or null; own enumerable string keys other than `__proto__`), nested at most
 * {@link MAX_PLAIN_DEPTH} levels, without cycles. Returns the first problem found (breadth first),
 * or undefined. Allocates nothing for a valid object without nested containers.
 */
export function plainObjectProblem(value: unknown): PlainDataProblem | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { path: [], message: 'must be a plain object' };
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return { path: [], message: `must be a plain object, not ${describe(value)}` };
  if (sharedWalk.busy) return new Walk().run(value);
  sharedWalk.busy = true;
  try {
    return sharedWalk.run(value);
  } finally {
    sharedWalk.busy = false;
  }
}
