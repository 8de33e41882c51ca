/**
 * How the SQL stores keep payloads and results: as JSON text. A value JSON cannot hold (a BigInt, a
 * cycle) is refused with a ValidationError naming the field instead of failing inside the driver.
 */
import { ValidationError } from '../shared/errors.js';

/** JSON text of `value`; `undefined` (and anything JSON drops) is stored as `null`. */
export function encodeJson(value: unknown, field: string): string {
  try {
    return JSON.stringify(value) ?? 'null';
  } catch (error) {
    throw new ValidationError(field, `must be a JSON value (${error instanceof Error ? error.message : String(error)})`, { cause: error });
  }
}

/** The value stored by {@link encodeJson}. */
export function decodeJson(text: string | null): unknown {
  return text === null ? null : (JSON.parse(text) as unknown);
}
