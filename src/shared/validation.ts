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
