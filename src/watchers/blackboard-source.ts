/**
 * `BlackboardSource` (DESIGN §4): an in-process key/value blackboard whose records are pages
 * (`blackboard:<key>`). Writing a new key emits page_added, overwriting one page_replaced (with
 * `editDiff`, the token-level diff of the previous and the new content), deleting one
 * page_invalidated. Relations a record declares (`{ to, type }`) are edges of the page graph: a
 * write emits page_graph_edge_added / _removed for what changed, a delete removes its edges.
 */
import { NotFoundError, ValidationError } from '../shared/errors.js';
import type { PageChangeEvent } from '../shared/events.js';
import { editDiff } from './edit-diff.js';
import { Broadcast } from './event-queue.js';
import { type ContextPageSource, NO_WATCH_CONTEXT, type PageRecord, type WatchContext } from './source.js';

/** A declared relation from one record to another. */
export interface BlackboardRelation {
  to: string;
  type: string;
}

/** Options of {@link BlackboardSource}. */
export interface BlackboardSourceOptions {
  /** Default `blackboard`. */
  sourceId?: string;
  /** Default `blackboard_record`. */
  dataType?: string;
}

interface Entry {
  value: unknown;
  text: string;
  version: number;
  relations: BlackboardRelation[];
}

/** Stable text of a value: strings as they are, anything else as JSON with sorted keys. */
function textOf(value: unknown): string {
  if (typeof value === 'string') return value;
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1))) : v,
  ) ?? 'null';
}

const edgeKey = (r: BlackboardRelation): string => `${r.type}\u0000${r.to}`;

export class BlackboardSource implements ContextPageSource {
  readonly static = false;
  readonly sourceId: string;
  readonly #dataType: string;
  readonly #entries = new Map<string, Entry>();
  readonly #broadcast = new Broadcast<PageChangeEvent>();

  constructor(options: BlackboardSourceOptions = {}) {
    this.sourceId = options.sourceId ?? 'blackboard';
    this.#dataType = options.dataType ?? 'blackboard_record';
  }

  /** The page id of a key. */
  static pageId(key: string): string {
    return `blackboard:${key}`;
  }

  get(key: string): unknown {
    return this.#entries.get(key)?.value;
  }

  has(key: string): boolean {
    return this.#entries.has(key);
  }

  keys(): string[] {
    return [...this.#entries.keys()];
  }

  /** Creates or overwrites a record; resolves once its events are queued for every watcher. */
  write(key: string, value: unknown, options: { relations?: BlackboardRelation[] } = {}): Promise<void> {
    if (typeof key !== 'string' || key.length === 0) return Promise.reject(new ValidationError('key', 'must be a non-empty string'));
    const relations = options.relations ?? this.#entries.get(key)?.relations ?? [];
    for (const [i, r] of relations.entries()) {
      if (typeof r?.to !== 'string' || r.to.length === 0 || typeof r.type !== 'string' || r.type.length === 0) {
        return Promise.reject(new ValidationError(`options.relations[${i}]`, 'must be { to: string, type: string }'));
      }
    }
    const previous = this.#entries.get(key);
    const text = textOf(value);
    const entry: Entry = { value, text, version: (previous?.version ?? 0) + 1, relations: [...relations] };
    this.#entries.set(key, entry);
    const pageId = BlackboardSource.pageId(key);
    const ts = Date.now();
    const base = { pageId, sourceId: this.sourceId, dataType: this.#dataType, ts };
    const events: PageChangeEvent[] = [];
    if (previous === undefined) events.push({ ...base, kind: 'page_added', extra: { key, version: entry.version } });
    else if (previous.text !== text) {
      events.push({ ...base, kind: 'page_replaced', related: [pageId], editDiff: editDiff(previous.text, text), extra: { key, version: entry.version } });
    }
    events.push(...this.#edgeEvents(pageId, previous?.relations ?? [], relations, ts));
    return this.#publish(events);
  }

  /** Overwrites an existing record (NotFoundError if there is none). */
  update(key: string, value: unknown, options: { relations?: BlackboardRelation[] } = {}): Promise<void> {
    if (!this.#entries.has(key)) return Promise.reject(new NotFoundError('blackboard record', key));
    return this.write(key, value, options);
  }

  /** Deletes a record: its edges are removed, then the page is invalidated. False if it did not exist. */
  async delete(key: string): Promise<boolean> {
    const previous = this.#entries.get(key);
    if (previous === undefined) return false;
    this.#entries.delete(key);
    const pageId = BlackboardSource.pageId(key);
    const ts = Date.now();
    const events = this.#edgeEvents(pageId, previous.relations, [], ts);
    events.push({ kind: 'page_invalidated', pageId, sourceId: this.sourceId, dataType: this.#dataType, reason: 'deleted', extra: { key }, ts });
    await this.#publish(events);
    return true;
  }

  #edgeEvents(pageId: string, before: readonly BlackboardRelation[], after: readonly BlackboardRelation[], ts: number): PageChangeEvent[] {
    const was = new Map(before.map((r) => [edgeKey(r), r]));
    const now = new Map(after.map((r) => [edgeKey(r), r]));
    const events: PageChangeEvent[] = [];
    const edge = (kind: 'page_graph_edge_added' | 'page_graph_edge_removed', r: BlackboardRelation): PageChangeEvent => ({
      kind,
      pageId,
      related: [BlackboardSource.pageId(r.to)],
      edgeType: r.type,
      sourceId: this.sourceId,
      ts,
    });
    for (const [k, r] of was) if (!now.has(k)) events.push(edge('page_graph_edge_removed', r));
    for (const [k, r] of now) if (!was.has(k)) events.push(edge('page_graph_edge_added', r));
    return events;
  }

  #publish(events: PageChangeEvent[]): Promise<void> {
    return this.#broadcast.publish(events);
  }

  /** The records now, as pages (for SourcePollWatcher and re-ingestion). */
  async snapshot(): Promise<PageRecord[]> {
    return [...this.#entries].map(([key, e]) => ({ pageId: BlackboardSource.pageId(key), version: String(e.version), dataType: this.#dataType, extra: { key } }));
  }

  watch(signal: AbortSignal = new AbortController().signal, context: WatchContext = NO_WATCH_CONTEXT): AsyncGenerator<PageChangeEvent> {
    return this.#broadcast.watch(signal, context);
  }
}
