/**
 * Page predicates (DESIGN §2): the zod schemas that validate a predicate or a tolerance on the main
 * thread, naming the offending field. The types and the evaluators ({@link matchesPredicate},
 * {@link compilePredicate}) live in `predicate-match.ts`, re-exported here, so that the worker threads
 * can evaluate predicates without loading zod.
 */
import { z } from 'zod';
import { PAGE_CHANGE_KINDS } from './event-kinds.js';
import { toEpochMs, type NumericTolerance, type PagePredicate } from './predicate-match.js';
import { parseInput } from './validation.js';

export { compilePredicate, DEFAULT_TOLERANCE_EPSILON, MATCH_ALL, matchesPredicate } from './predicate-match.js';
export type { CompiledPredicate, EdgeReach, NumericTolerance, PagePredicate } from './predicate-match.js';

// ---------------------------------------------------------------------------------------------
// Schemas

const PREDICATE_FIELDS: ReadonlySet<string> = new Set([
  'dataType',
  'sourcePrefix',
  'scopeId',
  'pageIdIn',
  'pageIdPrefix',
  'kinds',
  'effectiveAfter',
  'effectiveBefore',
  'edgeReach',
  'anyOf',
]);
const EDGE_REACH_FIELDS: ReadonlySet<string> = new Set(['root', 'maxHops', 'edgeTypes']);
const TOLERANCE_FIELDS: ReadonlySet<string> = new Set(['mode', 'value', 'epsilon']);

const nonEmpty = z.string().min(1, 'must be a non-empty string');
const nonEmptyList = <T extends z.ZodType>(item: T, what: string) =>
  z.array(item).min(1, `must list at least one ${what} (omit the field to match any)`);

/**
 * Strictness that names the offending key: zod's own `.strict()` reports unknown keys against the
 * enclosing object (`predicate`), while a user needs `predicate.anyOf[0].dataTypes` to find a typo.
 */
function rejectUnknownKeys(known: ReadonlySet<string>) {
  const expected = [...known].join(', ');
  return (value: object, ctx: z.RefinementCtx): void => {
    for (const key of Object.keys(value)) {
      if (!known.has(key)) ctx.addIssue({ code: 'custom', path: [key], message: `unknown field (expected one of: ${expected})` });
    }
  };
}

const EffectiveBoundSchema = z.union([
  z.number().finite('must be a finite number of epoch milliseconds'),
  z.string().refine((s) => Number.isFinite(Date.parse(s)), 'must be a date string Date.parse understands (ISO 8601)'),
]);

/** Validates {@link EdgeReach}, including DESIGN §2's root/maxHops rule. */
export const EdgeReachSchema = z
  .looseObject({
    root: nonEmpty.optional(),
    maxHops: z.number().int('must be an integer'),
    edgeTypes: nonEmptyList(nonEmpty, 'edge type').optional(),
  })
  .superRefine(rejectUnknownKeys(EDGE_REACH_FIELDS))
  .superRefine((reach, ctx) => {
    if (reach.root === undefined && reach.maxHops > 0) {
      ctx.addIssue({ code: 'custom', path: ['root'], message: 'is required when maxHops > 0' });
    } else if (reach.root !== undefined && reach.maxHops <= 0) {
      ctx.addIssue({ code: 'custom', path: ['maxHops'], message: 'must be > 0 when root is set' });
    }
  });

/** Validates a {@link PagePredicate} (recursively through `anyOf`); unknown fields are rejected by name. */
export const PagePredicateSchema: z.ZodType<PagePredicate> = z
  .looseObject({
    dataType: z.union([nonEmpty, nonEmptyList(nonEmpty, 'data type')]).optional(),
    sourcePrefix: z.string().optional(),
    scopeId: nonEmpty.optional(),
    pageIdIn: nonEmptyList(nonEmpty, 'page id').optional(),
    pageIdPrefix: z.string().optional(),
    kinds: nonEmptyList(z.enum(PAGE_CHANGE_KINDS), 'kind').optional(),
    effectiveAfter: EffectiveBoundSchema.optional(),
    effectiveBefore: EffectiveBoundSchema.optional(),
    edgeReach: EdgeReachSchema.optional(),
    get anyOf() {
      return nonEmptyList(PagePredicateSchema, 'predicate').optional();
    },
  })
  .superRefine(rejectUnknownKeys(PREDICATE_FIELDS))
  .superRefine((p, ctx) => {
    if (p.effectiveAfter !== undefined && p.effectiveBefore !== undefined && toEpochMs(p.effectiveBefore) < toEpochMs(p.effectiveAfter)) {
      ctx.addIssue({ code: 'custom', path: ['effectiveBefore'], message: 'must not be earlier than effectiveAfter (the range would be empty)' });
    }
  }) as z.ZodType<PagePredicate>;

/** Validates a {@link NumericTolerance}. */
export const NumericToleranceSchema: z.ZodType<NumericTolerance> = z
  .looseObject({
    mode: z.enum(['absolute', 'relative']),
    value: z.number().finite('must be a finite number').positive('must be > 0'),
    epsilon: z.number().finite('must be a finite number').nonnegative('must be >= 0').optional(),
  })
  .superRefine(rejectUnknownKeys(TOLERANCE_FIELDS)) as z.ZodType<NumericTolerance>;

/**
 * Validates a predicate at a boundary and returns a fresh copy (the caller's object is never kept or
 * mutated). Throws {@link ValidationError} naming the field, e.g. `predicate.anyOf[1].kinds`.
 */
export function validatePredicate(value: unknown, name = 'predicate'): PagePredicate {
  return parseInput(PagePredicateSchema, value, name);
}

/** Validates a tolerance; throws {@link ValidationError} naming the field (`tolerance.value`). */
export function validateTolerance(value: unknown, name = 'tolerance'): NumericTolerance {
  return parseInput(NumericToleranceSchema, value, name);
}
