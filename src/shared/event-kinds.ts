/**
 * The page-change event's shape (DESIGN §2) and the protocol key helpers, without the zod schema
 * (`events.ts`): the worker threads import this module only, so that zod (~13 MB of RSS per thread
 * that loads it) stays on the main thread, where options and events from the embedder are validated.
 */
import { ProtocolError, ValidationError } from './errors.js';

/** What happened to a page. */
export const PAGE_CHANGE_KINDS = [
  'page_added',
  'page_replaced',
  'page_invalidated',
  'page_graph_edge_added',
  'page_graph_edge_removed',
] as const;
export type PageChangeKind = (typeof PAGE_CHANGE_KINDS)[number];

/** One change to one page (or, for edge kinds, to one edge of the page graph). */
export interface PageChangeEvent {
  kind: PageChangeKind;
  /** For `page_replaced` the NEW id; for edge kinds the source page of the edge. */
  pageId: string;
  /** Where the change came from, e.g. `file:/abs/root`, `git:<url>@<sha>`, `manual`. */
  sourceId: string;
  dataType?: string;
  scopeId?: string;
  /** `page_replaced`: `[oldId]` (absent: replaced in place); edge kinds: `[targetId]` (required). */
  related?: string[];
  edgeType?: string;
  reason?: string;
  editDiff?: string;
  /** Free-form data: `value` (for damping), `effectiveAt`, `relativePath`, `addedRecords`… */
  extra?: Record<string, unknown>;
  /** Milliseconds since the epoch; the engine fills it in when absent. */
  ts?: number;
}

function keyProtocol(prefix: string, what: string) {
  return {
    key(id: string): string {
      if (typeof id !== 'string' || id.length === 0) throw new ValidationError(what, 'must be a non-empty string');
      return `${prefix}${id}`;
    },
    pattern(): string {
      return `${prefix}*`;
    },
    parse(key: string): string {
      if (typeof key !== 'string' || !key.startsWith(prefix) || key.length === prefix.length) {
        throw new ProtocolError(`not a ${prefix}<${what}> key: ${JSON.stringify(key)}`);
      }
      return key.slice(prefix.length);
    },
  };
}

const dispatch = keyProtocol('convergence:dispatch:', 'subscriptionId');
const quiescence = keyProtocol('convergence:quiescence:', 'episodeId');

/** Keys under which dispatches for a subscription are published: `convergence:dispatch:<subId>`. */
export const ConvergenceDispatchProtocol = {
  PREFIX: 'convergence:dispatch:',
  dispatchKey: dispatch.key,
  dispatchPattern: dispatch.pattern,
  parseDispatchKey: dispatch.parse,
} as const;

/** Keys under which quiescence is announced: `convergence:quiescence:<episodeId>`. */
export const ConvergenceQuiescenceProtocol = {
  PREFIX: 'convergence:quiescence:',
  quiescenceKey: quiescence.key,
  quiescencePattern: quiescence.pattern,
  parseQuiescenceKey: quiescence.parse,
} as const;
