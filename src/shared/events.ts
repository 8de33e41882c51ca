/**
 * Page-change events (DESIGN §2): the one record every source emits and every subscriber receives,
 * its zod schema, the factories that build it, and the protocol key helpers.
 */
import { z } from 'zod';
import { ValidationError } from './errors.js';
import { ILL_FORMED_STRING, parseInput, plainObjectProblem } from './validation.js';
import { PAGE_CHANGE_KINDS, type PageChangeEvent, type PageChangeKind } from './event-kinds.js';

export { ConvergenceDispatchProtocol, ConvergenceQuiescenceProtocol, PAGE_CHANGE_KINDS } from './event-kinds.js';
export type { PageChangeEvent, PageChangeKind } from './event-kinds.js';

const wellFormed = (s: string): boolean => s.isWellFormed();
const text = z.string().refine(wellFormed, ILL_FORMED_STRING);
const nonEmpty = z.string().min(1, 'must be a non-empty string').refine(wellFormed, ILL_FORMED_STRING);

/** `extra`: a plain object of plain data (see {@link plainObjectProblem}); the issue names the nested key. */
const Extra = z.custom<Record<string, unknown>>(() => true).superRefine((value, ctx) => {
  const problem = plainObjectProblem(value);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', path: problem.path, message: problem.message });
});

/**
 * Validates a {@link PageChangeEvent}. Edge kinds require a target in `related`; a replaced page
 * names its old id there (`PageChange.replaced`), or, without `related`, is replaced in place. Every string must be well-formed UTF-16 (no lone surrogates: msgpack's UTF-8 cannot
 * carry them, so they are refused rather than silently replaced by U+FFFD) and `extra` must be
 * plain data (see {@link plainObjectProblem}).
 */
export const PageChangeEventSchema = z
  .object({
    kind: z.enum(PAGE_CHANGE_KINDS),
    pageId: nonEmpty,
    sourceId: nonEmpty,
    dataType: nonEmpty.optional(),
    scopeId: nonEmpty.optional(),
    related: z.array(nonEmpty).optional(),
    edgeType: nonEmpty.optional(),
    reason: text.optional(),
    editDiff: text.optional(),
    extra: Extra.optional(),
    ts: z.number().finite().nonnegative().optional(),
  })
  .strict()
  .superRefine((event, ctx) => {
    // An edge needs its target. A page_replaced without `related` replaces the page in place (its
    // old id is its id): DESIGN types `related` as optional, and a content update of one page is the
    // common case (damped metrics), so it is not refused.
    const needsRelated = event.kind === 'page_graph_edge_added' || event.kind === 'page_graph_edge_removed';
    if (needsRelated && (event.related === undefined || event.related.length === 0)) {
      ctx.addIssue({ code: 'custom', path: ['related'], message: `${event.kind} needs related: [targetId]` });
    }
  });

const KIND_SET: ReadonlySet<string> = new Set(PAGE_CHANGE_KINDS);

/** A required or optional (when `undefined`) non-empty, well-formed string. */
function isId(v: unknown): boolean {
  return typeof v === 'string' && v.length > 0 && v.isWellFormed();
}

function isOptionalId(v: unknown): boolean {
  return v === undefined || (typeof v === 'string' && v.length > 0 && v.isWellFormed());
}

function isOptionalText(v: unknown): boolean {
  return v === undefined || (typeof v === 'string' && v.isWellFormed());
}

/**
 * The hot path's check: exactly the rules of {@link PageChangeEventSchema}, hand-written, because
 * zod costs ~4 µs per event and `dispatchChange` sees millions (a property test holds the two
 * together). On `false` the caller runs zod, which then names the field.
 */
export function isWellFormedEvent(value: unknown): value is PageChangeEvent {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const e = value as Record<string, unknown>;
  const kind = e['kind'];
  if (typeof kind !== 'string' || !KIND_SET.has(kind)) return false;
  for (const key in e) if (!isKnownField(key)) return false;
  return hasWellFormedFields(e, kind);
}

/**
 * Whether `key` is a {@link PageChangeEvent} field. A switch rather than a Set: property keys are
 * internalized strings, compared by identity, where a Set lookup hashes (it was the largest cost
 * of checking a factory-built event).
 */
function isKnownField(key: string): boolean {
  switch (key) {
    case 'kind':
    case 'pageId':
    case 'sourceId':
    case 'dataType':
    case 'scopeId':
    case 'related':
    case 'edgeType':
    case 'reason':
    case 'editDiff':
    case 'extra':
    case 'ts':
      return true;
    default:
      return false;
  }
}

/** The field rules of {@link isWellFormedEvent} for an object whose kind is valid and keys are known. */
function hasWellFormedFields(e: Record<string, unknown>, kind: string): boolean {
  if (!isId(e['pageId']) || !isId(e['sourceId'])) return false;
  if (!isOptionalId(e['dataType']) || !isOptionalId(e['scopeId']) || !isOptionalId(e['edgeType'])) return false;
  if (!isOptionalText(e['reason']) || !isOptionalText(e['editDiff'])) return false;
  const ts = e['ts'];
  if (ts !== undefined && (typeof ts !== 'number' || !Number.isFinite(ts) || ts < 0)) return false;
  const related = e['related'];
  if (related !== undefined) {
    if (!Array.isArray(related)) return false;
    for (let i = 0; i < related.length; i++) if (!isId(related[i])) return false;
  }
  if ((kind === 'page_graph_edge_added' || kind === 'page_graph_edge_removed') && (related === undefined || (related as unknown[]).length === 0)) return false;
  const extra = e['extra'];
  return extra === undefined || plainObjectProblem(extra) === undefined;
}

/** Validates one event; throws a ValidationError naming the field (e.g. `event.pageId`). */
export function validateEvent(value: unknown, name = 'event'): PageChangeEvent {
  if (isWellFormedEvent(value)) return value;
  return parseInput(PageChangeEventSchema, value, name) as PageChangeEvent;
}

/** Validates one event or an array of them; the error names the index (`events[3].kind`). */
export function validateEvents(value: unknown, name = 'events'): PageChangeEvent[] {
  if (!Array.isArray(value)) return [validateEvent(value, 'event')];
  const out = new Array<PageChangeEvent>(value.length);
  for (let i = 0; i < value.length; i++) {
    const event: unknown = value[i];
    // The field name is built only for the error: a string per event would cost more than the check.
    out[i] = isWellFormedEvent(event) ? event : (parseInput(PageChangeEventSchema, event, `${name}[${i}]`) as PageChangeEvent);
  }
  return out;
}

/** Optional fields a factory accepts besides the ones its arguments fix. */
export type PageChangeInit = Partial<Omit<PageChangeEvent, 'kind' | 'pageId' | 'related'>>;

/** Whether a factory's `init` may hold `key` (a switch, like {@link isKnownField}). */
function isInitField(key: string): boolean {
  return key !== 'kind' && key !== 'pageId' && key !== 'related' && isKnownField(key);
}

/**
 * Builds an event as one literal plus field stores in a fixed order (no object spread: V8 makes a
 * spread-then-extended object ~20× slower to build and to walk), so factory events share a hidden
 * class. An `init` with a key a factory does not take goes the slow way, where the schema names it.
 */
function build(kind: PageChangeKind, pageId: string, related: string[] | undefined, init: PageChangeInit, reason?: string, edgeType?: string): PageChangeEvent {
  if (init === null || typeof init !== 'object') throw new ValidationError('init', 'must be an object');
  for (const key in init) if (!isInitField(key)) return buildSlowly(kind, pageId, related, init, reason, edgeType);
  const event: PageChangeEvent = { kind, pageId, sourceId: init.sourceId ?? 'manual' };
  if (init.dataType !== undefined) event.dataType = init.dataType;
  if (init.scopeId !== undefined) event.scopeId = init.scopeId;
  if (related !== undefined) event.related = related;
  const edge = edgeType ?? init.edgeType;
  if (edge !== undefined) event.edgeType = edge;
  const why = reason ?? init.reason;
  if (why !== undefined) event.reason = why;
  if (init.editDiff !== undefined) event.editDiff = init.editDiff;
  if (init.extra !== undefined) event.extra = init.extra;
  if (init.ts !== undefined) event.ts = init.ts;
  // Its kind is one of ours and it has only known keys, by construction: only the fields are checked.
  return hasWellFormedFields(event as unknown as Record<string, unknown>, kind) ? event : validateEvent(event);
}

function buildSlowly(kind: PageChangeKind, pageId: string, related: string[] | undefined, init: PageChangeInit, reason?: string, edgeType?: string): PageChangeEvent {
  const event: PageChangeEvent = { ...init, kind, pageId, sourceId: init.sourceId ?? 'manual' };
  if (related !== undefined) event.related = related;
  if (reason !== undefined) event.reason = reason;
  if (edgeType !== undefined) event.edgeType = edgeType;
  return validateEvent(event);
}

/**
 * A copy of `event` with `sourceId` and `ts` filled in where it lacks them, for the engine's
 * boundary (which never mutates the caller's objects). Built as a literal in field order: an object
 * spread plus new keys costs ~20× more in V8 (a slow-path clone per event). An event with a key the
 * schema does not know is copied with a spread, so that validation still sees and names that key.
 */
export function eventWithDefaults(event: PageChangeEvent, sourceId: string | undefined, ts: number): PageChangeEvent {
  for (const key in event) if (!isKnownField(key)) return { ...event, sourceId: event.sourceId ?? sourceId, ts: event.ts ?? ts } as PageChangeEvent;
  const out = { kind: event.kind, pageId: event.pageId, sourceId: event.sourceId ?? sourceId } as PageChangeEvent;
  if (event.dataType !== undefined) out.dataType = event.dataType;
  if (event.scopeId !== undefined) out.scopeId = event.scopeId;
  if (event.related !== undefined) out.related = event.related;
  if (event.edgeType !== undefined) out.edgeType = event.edgeType;
  if (event.reason !== undefined) out.reason = event.reason;
  if (event.editDiff !== undefined) out.editDiff = event.editDiff;
  if (event.extra !== undefined) out.extra = event.extra;
  out.ts = event.ts ?? ts;
  return out;
}

/** Factories for {@link PageChangeEvent}s. Each validates and throws ValidationError on bad input. */
export const PageChange = {
  added(pageId: string, init: PageChangeInit = {}): PageChangeEvent {
    return build('page_added', pageId, undefined, init);
  },
  replaced(oldId: string, newId: string, init: PageChangeInit = {}): PageChangeEvent {
    return build('page_replaced', newId, [oldId], init);
  },
  invalidated(pageId: string, reason?: string, init: PageChangeInit = {}): PageChangeEvent {
    return build('page_invalidated', pageId, undefined, init, reason);
  },
  edgeAdded(from: string, to: string, edgeType?: string, init: PageChangeInit = {}): PageChangeEvent {
    return build('page_graph_edge_added', from, [to], init, undefined, edgeType);
  },
  edgeRemoved(from: string, to: string, edgeType?: string, init: PageChangeInit = {}): PageChangeEvent {
    return build('page_graph_edge_removed', from, [to], init, undefined, edgeType);
  },
} as const;
