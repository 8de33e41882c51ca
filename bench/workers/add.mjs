// No-op task for bench/pool.bench.ts: the same function for every pool under comparison.
/** Piscina and tinypool call the default export with one argument. */
export default function addTask({ a, b }) {
  return a + b;
}

/** The colony pool calls `add(a, b)`. */
export function add(a, b) {
  return a + b;
}
