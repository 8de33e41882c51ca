/**
 * Page predicates (DESIGN §2): the plain, serialisable description of which page changes a
 * subscription wants, and their evaluation. A predicate crosses the thread boundary as data (it is
 * validated on the main thread by the zod schemas of `predicates.ts`, which re-exports this module,
 * then compiled inside the convergence worker), so it holds no functions and no class instances.
 * This module does not import zod: the worker threads load only it (zod costs ~13 MB of RSS in each
 * thread that loads it).
 *
 * Two evaluators live here on purpose:
 * - {@link matchesPredicate} reads the predicate field by field. It is the reference semantics and
 *   what single-threaded users call; it needs no preparation and tolerates a predicate being mutated
 *   between calls.
 * - {@link compilePredicate} turns a validated predicate into one closure with its sets and bounds
 *   prepared once. The convergence worker evaluates predicates millions of times per second, so it
 *   only ever uses the compiled form. Tests hold the two to the same answers.
 */
import type { PageChangeEvent, PageChangeKind } from './event-kinds.js';
import type { PageGraph } from './page-graph.js';

/**
 * Bounded reachability in the page graph. Semantics (decided here, relied on by the index and the
 * worker):
 * - Edges are followed in their declared direction only (`pageId → related[0]` of the edge event):
 *   "everything `root` links to, transitively". Reverse reach is a different question and would make
 *   every hub page match everything.
 * - `root` itself matches (it is 0 hops away): a subscription to a subtree wants changes to the
 *   subtree's root as well, and that answer must not depend on whether the root has edges yet.
 * - `edgeTypes` restricts which edges may be followed; omitted = any type, including untyped edges.
 * - Without a root the clause is inert (always holds, needs no graph) and `maxHops` must be `<= 0`:
 *   it is the serialisable spelling of "no graph constraint". `maxHops > 0` without a root, or a root
 *   with `maxHops <= 0`, is a {@link ValidationError} (DESIGN §2).
 */
export interface EdgeReach {
  root?: string;
  /** Largest number of edges between `root` and the event's page; an integer. */
  maxHops: number;
  edgeTypes?: string[];
}

/**
 * Which page changes a subscription wants. Every field that is set must hold (AND); `anyOf` adds an
 * OR of nested predicates; the empty predicate `{}` matches every event.
 *
 * `effectiveAfter` / `effectiveBefore` are inclusive bounds on `event.extra.effectiveAt`, each given
 * as epoch milliseconds or a date string (`Date.parse`; use ISO 8601 with an offset, since a string
 * without one is read in the local time zone). An event whose `effectiveAt` is missing or
 * unparseable never matches a bounded predicate: an undated page cannot be shown to be in range.
 */
export interface PagePredicate {
  /** Exact `event.dataType`; an array means any of them. */
  dataType?: string | string[];
  /** `event.sourceId` starts with this. */
  sourcePrefix?: string;
  /** Exact `event.scopeId`. */
  scopeId?: string;
  /** `event.pageId` is one of these. */
  pageIdIn?: string[];
  /** `event.pageId` starts with this. */
  pageIdPrefix?: string;
  /** `event.kind` is one of these. */
  kinds?: PageChangeKind[];
  effectiveAfter?: number | string;
  effectiveBefore?: number | string;
  edgeReach?: EdgeReach;
  /** At least one of these nested predicates holds. */
  anyOf?: PagePredicate[];
}

/**
 * How close two numeric values must be for the damper to treat the newer one as "no change".
 * `absolute`: every component differs by at most `value`. `relative`: every component differs by at
 * most `value · max(|a|, |b|, epsilon)`; `epsilon` (default {@link DEFAULT_TOLERANCE_EPSILON}) keeps
 * values near zero from demanding exact equality.
 */
export interface NumericTolerance {
  mode: 'absolute' | 'relative';
  value: number;
  epsilon?: number;
}

/** Floor of the relative tolerance's scale, so that values at or near 0 can still be damped. */
export const DEFAULT_TOLERANCE_EPSILON = 1e-12;

/** A predicate prepared by {@link compilePredicate}: pure, allocation-free on the hot path. */
export type CompiledPredicate = (event: PageChangeEvent, graph?: PageGraph) => boolean;

/** Epoch ms of a bound or an event's `effectiveAt`; NaN when it is not a usable instant. */
export function toEpochMs(value: unknown): number {
  if (typeof value === 'number') return Number.isFinite(value) ? value : Number.NaN;
  if (typeof value === 'string') return Date.parse(value);
  if (value instanceof Date) return value.getTime();
  return Number.NaN;
}

// ---------------------------------------------------------------------------------------------
// Reference evaluation

/**
 * Whether `event` satisfies `predicate`. A predicate with an active `edgeReach` never matches
 * without a `graph`: reachability cannot be shown, and a false match would dispatch work for pages
 * the subscriber never asked about. The predicate is assumed valid (see {@link validatePredicate}).
 */
export function matchesPredicate(predicate: PagePredicate, event: PageChangeEvent, graph?: PageGraph): boolean {
  const p = predicate;
  if (p.dataType !== undefined) {
    if (event.dataType === undefined) return false;
    if (typeof p.dataType === 'string' ? p.dataType !== event.dataType : !p.dataType.includes(event.dataType)) return false;
  }
  if (p.sourcePrefix !== undefined && !event.sourceId.startsWith(p.sourcePrefix)) return false;
  if (p.scopeId !== undefined && p.scopeId !== event.scopeId) return false;
  if (p.pageIdIn !== undefined && !p.pageIdIn.includes(event.pageId)) return false;
  if (p.pageIdPrefix !== undefined && !event.pageId.startsWith(p.pageIdPrefix)) return false;
  if (p.kinds !== undefined && !p.kinds.includes(event.kind)) return false;
  if (p.effectiveAfter !== undefined || p.effectiveBefore !== undefined) {
    const at = toEpochMs(event.extra?.effectiveAt);
    if (Number.isNaN(at)) return false;
    if (p.effectiveAfter !== undefined && !(at >= toEpochMs(p.effectiveAfter))) return false;
    if (p.effectiveBefore !== undefined && !(at <= toEpochMs(p.effectiveBefore))) return false;
  }
  if (p.edgeReach !== undefined && p.edgeReach.root !== undefined) {
    if (graph === undefined) return false;
    if (!graph.reachable(p.edgeReach.root, event.pageId, p.edgeReach.maxHops, p.edgeReach.edgeTypes)) return false;
  }
  if (p.anyOf !== undefined && !p.anyOf.some((q) => matchesPredicate(q, event, graph))) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Compilation

/** What {@link compilePredicate} returns for a predicate with no constraint; callers may skip calling it. */
export const MATCH_ALL: CompiledPredicate = () => true;

// Many subscriptions test the same event one after another; a one-entry memo saves re-parsing its
// ISO `effectiveAt` for each of them. Safe because the worker is single-threaded and the memo is a
// pure function of the string.
let memoDateString = '';
let memoDateMs = Number.NaN;

function eventEffectiveMs(event: PageChangeEvent): number {
  const raw = event.extra?.effectiveAt;
  if (typeof raw === 'number') return Number.isFinite(raw) ? raw : Number.NaN;
  if (typeof raw === 'string') {
    if (raw !== memoDateString) {
      memoDateMs = Date.parse(raw);
      memoDateString = raw;
    }
    return memoDateMs;
  }
  return toEpochMs(raw);
}

/**
 * Prepares a validated predicate for repeated evaluation: arrays become Sets, date bounds are parsed
 * once, nested `anyOf` branches are compiled, and unset fields cost one branch each. The result
 * answers exactly as {@link matchesPredicate} would for the predicate as it was when compiled.
 */
export function compilePredicate(predicate: PagePredicate): CompiledPredicate {
  const p = predicate;
  const oneDataType = typeof p.dataType === 'string' ? p.dataType : undefined;
  const dataTypes = Array.isArray(p.dataType) ? new Set(p.dataType) : undefined;
  const sourcePrefix = p.sourcePrefix;
  const scopeId = p.scopeId;
  const pageIds = p.pageIdIn === undefined ? undefined : new Set(p.pageIdIn);
  const pageIdPrefix = p.pageIdPrefix;
  const kinds = p.kinds === undefined ? undefined : new Set<string>(p.kinds);
  const after = p.effectiveAfter === undefined ? Number.NEGATIVE_INFINITY : toEpochMs(p.effectiveAfter);
  const before = p.effectiveBefore === undefined ? Number.POSITIVE_INFINITY : toEpochMs(p.effectiveBefore);
  const dated = p.effectiveAfter !== undefined || p.effectiveBefore !== undefined;
  const reachRoot = p.edgeReach?.root;
  const reachHops = p.edgeReach?.maxHops ?? 0;
  const reachTypes = p.edgeReach?.edgeTypes === undefined ? undefined : [...p.edgeReach.edgeTypes];
  const branches = p.anyOf?.map(compilePredicate);

  if (
    p.dataType === undefined &&
    sourcePrefix === undefined &&
    scopeId === undefined &&
    pageIds === undefined &&
    pageIdPrefix === undefined &&
    kinds === undefined &&
    !dated &&
    reachRoot === undefined &&
    branches === undefined
  ) {
    return MATCH_ALL;
  }

  return (event, graph) => {
    if (oneDataType !== undefined && event.dataType !== oneDataType) return false;
    if (dataTypes !== undefined && (event.dataType === undefined || !dataTypes.has(event.dataType))) return false;
    if (sourcePrefix !== undefined && !event.sourceId.startsWith(sourcePrefix)) return false;
    if (scopeId !== undefined && event.scopeId !== scopeId) return false;
    if (pageIds !== undefined && !pageIds.has(event.pageId)) return false;
    if (pageIdPrefix !== undefined && !event.pageId.startsWith(pageIdPrefix)) return false;
    if (kinds !== undefined && !kinds.has(event.kind)) return false;
    if (dated) {
      const at = eventEffectiveMs(event);
      // NaN fails both comparisons: undated events never match a dated predicate.
      if (!(at >= after && at <= before)) return false;
    }
    if (reachRoot !== undefined && (graph === undefined || !graph.reachable(reachRoot, event.pageId, reachHops, reachTypes))) return false;
    if (branches !== undefined) {
      for (let i = 0; i < branches.length; i++) if (branches[i]!(event, graph)) return true;
      return false;
    }
    return true;
  };
}
