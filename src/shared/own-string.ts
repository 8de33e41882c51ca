/**
 * Strings kept long after the frame or native callback they were cut from.
 *
 * `slice` / `substring` of a string of 13 characters or more gives a V8 "sliced string": a view that
 * keeps its whole parent alive. A page id decoded from a ring frame is a slice of the frame's string
 * pool (every string of up to a few hundred events); a relative path cut from a native watcher's
 * absolute path keeps the absolute path. Kept as a map key, each such slice pins its parent: under a
 * 100k-file storm the convergence worker's rate limiter held ~6 MB of frame pools this way.
 */

/**
 * A copy of `s` that shares no memory with the string it may have been sliced from. Concatenating
 * one character makes a cons string, which `slice` flattens into a fresh sequential string before
 * slicing it: the result views that fresh copy only (~0.1 µs for a path, where a round trip through
 * a Buffer costs ~0.7–1.8 µs).
 */
export function ownString(s: string): string {
  return (' ' + s).slice(1);
}
