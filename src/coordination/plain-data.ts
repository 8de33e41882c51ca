/**
 * What a task may carry as payload, result or failure reason: plain JSON data, the one thing every
 * store (memory, SQLite, PostgreSQL) keeps faithfully. A value JSON would silently change — a Set or
 * Map (stored as `{}`), a Date (a string), a class instance (its prototype lost), a function or
 * symbol (dropped), NaN or ±Infinity (null), a BigInt (refused by JSON), a cycle, an array hole — is
 * refused with a ValidationError naming the offending field, whatever the store, so that moving from
 * the memory store to a SQL store never changes what a task carries.
 *
 * Accepted: null, booleans, strings, finite numbers, arrays of accepted values, and plain objects
 * (prototype `Object.prototype` or null, no symbol keys) whose values are accepted. A property whose
 * value is `undefined` is allowed and dropped, as JSON does (`{ a: undefined }` reads back as `{}`);
 * a top-level `undefined` is stored as null.
 */
import { ValidationError } from '../shared/errors.js';

/** Deeper nesting is refused (JSON.stringify would overflow the stack long before anyone meant it). */
export const MAX_PLAIN_DATA_DEPTH = 256;

/** Throws a ValidationError naming `field` (extended with the path inside) unless `value` is plain data. */
export function assertPlainData(value: unknown, field: string): void {
  // The common cases first, without a call: a primitive, or a flat object of primitives.
  if (value === null || value === undefined || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number' && Number.isFinite(value)) return;
  const problem = check(value, [], 0);
  if (problem !== null) throw new ValidationError(problem.path.reduce<string>((out, key) => (typeof key === 'number' ? `${out}[${key}]` : `${out}.${key}`), field), problem.message);
}

interface Problem {
  readonly path: (string | number)[];
  readonly message: string;
}

function describe(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  if (typeof value === 'bigint') return 'a BigInt';
  if (typeof value === 'number') return String(value);
  const name = (value as object).constructor?.name;
  return typeof name === 'string' && name !== '' ? `a ${name}` : 'an object with a custom prototype';
}

const NOT_PLAIN = 'must be plain JSON data (null, boolean, string, finite number, array, plain object)';

/** The first problem in `value`, with its path, or null. `ancestors` holds the objects above it (cycles). */
function check(value: unknown, ancestors: object[], depth: number): Problem | null {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return null;
    case 'number':
      return Number.isFinite(value) ? null : { path: [], message: `${NOT_PLAIN}; got ${describe(value)}, which JSON stores as null` };
    case 'object':
      break;
    default:
      return { path: [], message: `${NOT_PLAIN}; got ${describe(value)}` };
  }
  if (value === null) return null;
  if (depth >= MAX_PLAIN_DATA_DEPTH) return { path: [], message: `is nested deeper than ${MAX_PLAIN_DATA_DEPTH} levels` };
  if (ancestors.includes(value)) return { path: [], message: 'is circular: it contains itself' };
  if (Array.isArray(value)) {
    ancestors.push(value);
    for (let index = 0; index < value.length; index++) {
      const item: unknown = value[index];
      if (item === undefined) {
        ancestors.pop();
        return { path: [index], message: `${NOT_PLAIN}; an array element that is undefined or a hole would come back as null` };
      }
      const problem = check(item, ancestors, depth + 1);
      if (problem !== null) {
        problem.path.unshift(index);
        ancestors.pop();
        return problem;
      }
    }
    ancestors.pop();
    return null;
  }
  const prototype: unknown = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return { path: [], message: `${NOT_PLAIN}; got ${describe(value)}` };
  if (Object.getOwnPropertySymbols(value).length > 0) return { path: [], message: `${NOT_PLAIN}; symbol keys are not stored` };
  ancestors.push(value);
  for (const key in value) {
    const item: unknown = (value as Record<string, unknown>)[key];
    if (item === undefined) continue;
    const problem = check(item, ancestors, depth + 1);
    if (problem !== null) {
      problem.path.unshift(key);
      ancestors.pop();
      return problem;
    }
  }
  ancestors.pop();
  return null;
}
