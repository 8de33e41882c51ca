/**
 * The convergence damper (DESIGN §2): drops dispatches whose value has not moved by more than the
 * subscription's tolerance, so that numeric jitter does not keep a system of handlers from settling.
 */
import { DEFAULT_TOLERANCE_EPSILON, type NumericTolerance } from './predicate-match.js';

/** The last dispatched value: a scalar, or a private copy of a vector (the caller may reuse its array). */
type Reference = number | Float64Array;

/**
 * Decides, per (subscription, page), whether a new value is close enough to the last one that was
 * actually dispatched to be skipped.
 *
 * - **Reference = last dispatched value.** Skipped values never become the reference, so a slow
 *   drift (1.0, 1.4, 1.8, 2.2 with absolute 0.5 → 1.0 and 1.8 dispatched) cannot hide under the
 *   tolerance: nothing is ever skipped that is more than the tolerance away from what the
 *   subscriber last saw.
 * - **Values**: a finite or non-finite number, a boolean (1/0), or an array (or typed array) of
 *   numbers; scalars and vectors never compare equal to each other, nor vectors of different
 *   lengths (a shape change is always news). NaN and infinities never compare within tolerance, so
 *   they are always dispatched. Anything else (strings, objects, undefined) is never damped and
 *   clears the reference: the next numeric value starts afresh.
 * - **Norm**: per component (L∞). `absolute`: max |a−b| ≤ value. `relative`: every component
 *   satisfies |a−b| ≤ value · max(|a|, |b|, epsilon). L∞ is used for both so that the two modes bound
 *   the same thing — how far any single component may move unseen — independent of vector length
 *   (an L2 bound would tighten as vectors grow).
 * - **No tolerance**: never skips, but still records the value, so that a tolerance applied later
 *   compares against what was really dispatched.
 *
 * Memory: one reference per (subscription, page) that received a numeric value. It is freed by
 * {@link reset}, by {@link forgetSubscription} (call it when a subscription is removed), by
 * {@link forgetPage} (call it when a page is invalidated) and by a non-numeric value for that pair.
 */
export class ConvergenceDamper {
  readonly #refs = new Map<string, Map<string, Reference>>();
  /** Reverse index: page → subscriptions holding a reference for it, so a gone page is freed in O(its refs). */
  readonly #byPage = new Map<string, Set<string>>();
  #size = 0;

  /** Number of (subscription, page) references held. */
  get size(): number {
    return this.#size;
  }

  /**
   * True when `value` is within `tolerance` of the last value dispatched for (subId, pageId): the
   * dispatch should be skipped and the reference stays. False otherwise, and `value` becomes the
   * reference (the caller is expected to dispatch it). The tolerance is trusted here; validate it
   * once at the boundary with `validateTolerance`.
   */
  shouldSkip(subId: string, pageId: string, value: unknown, tolerance?: NumericTolerance): boolean {
    const next = toReference(value);
    let pages = this.#refs.get(subId);
    if (next === undefined) {
      if (pages !== undefined && pages.has(pageId)) this.#drop(subId, pages, pageId);
      return false;
    }
    const ref = pages?.get(pageId);
    if (ref !== undefined && tolerance !== undefined && within(ref, next, tolerance)) return true;
    if (pages === undefined) {
      pages = new Map();
      this.#refs.set(subId, pages);
    }
    if (ref === undefined) {
      this.#size++;
      let subs = this.#byPage.get(pageId);
      if (subs === undefined) this.#byPage.set(pageId, (subs = new Set()));
      subs.add(subId);
    }
    pages.set(pageId, next);
    return false;
  }

  /**
   * Forgets references: all of them (no arguments), one subscription's, one (subscription, page)
   * pair's, or — with `subId` undefined and a `pageId` — that page's for every subscription. The next
   * value for a forgotten pair is always dispatched.
   */
  reset(subId?: string, pageId?: string): void {
    if (subId === undefined && pageId === undefined) {
      this.#refs.clear();
      this.#byPage.clear();
      this.#size = 0;
      return;
    }
    if (subId === undefined) {
      this.forgetPage(pageId!);
      return;
    }
    const pages = this.#refs.get(subId);
    if (pages === undefined) return;
    if (pageId === undefined) {
      for (const page of [...pages.keys()]) this.#drop(subId, pages, page);
    } else if (pages.has(pageId)) {
      this.#drop(subId, pages, pageId);
    }
  }

  /** Drops every reference of a subscription; call it when the subscription is removed. */
  forgetSubscription(subId: string): void {
    this.reset(subId);
  }

  /** Drops every subscription's reference for a page; call it when the page is invalidated (gone). */
  forgetPage(pageId: string): void {
    const subs = this.#byPage.get(pageId);
    if (subs === undefined) return;
    for (const subId of [...subs]) this.#drop(subId, this.#refs.get(subId)!, pageId);
  }

  #drop(subId: string, pages: Map<string, Reference>, pageId: string): void {
    pages.delete(pageId);
    this.#size--;
    if (pages.size === 0) this.#refs.delete(subId);
    const subs = this.#byPage.get(pageId)!;
    subs.delete(subId);
    if (subs.size === 0) this.#byPage.delete(pageId);
  }
}

/** A damping reference for `value`, or undefined when the value is not numeric. */
function toReference(value: unknown): Reference | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (Array.isArray(value)) {
    const out = new Float64Array(value.length);
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (typeof item !== 'number') return undefined;
      out[i] = item;
    }
    return out;
  }
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    // BigInt64Array and friends hold bigints, which do not mix with a float tolerance.
    if (value instanceof BigInt64Array || value instanceof BigUint64Array) return undefined;
    return Float64Array.from(value as unknown as ArrayLike<number>);
  }
  return undefined;
}

function within(ref: Reference, next: Reference, tolerance: NumericTolerance): boolean {
  if (typeof ref === 'number') return typeof next === 'number' && close(ref, next, tolerance);
  if (typeof next === 'number' || next.length !== ref.length) return false;
  for (let i = 0; i < ref.length; i++) if (!close(ref[i]!, next[i]!, tolerance)) return false;
  return true;
}

function close(a: number, b: number, tolerance: NumericTolerance): boolean {
  const diff = Math.abs(a - b);
  // NaN, ∞ − ∞ and overflow are never "close": a relative scale of ∞ would otherwise damp anything.
  if (!Number.isFinite(diff)) return false;
  if (tolerance.mode === 'absolute') return diff <= tolerance.value;
  const scale = Math.max(Math.abs(a), Math.abs(b), tolerance.epsilon ?? DEFAULT_TOLERANCE_EPSILON);
  return diff <= tolerance.value * scale;
}
