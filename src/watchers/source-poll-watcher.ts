/**
 * `SourcePollWatcher` (DESIGN §4): the catch-all transport for sources behind APIs with no push
 * notification. Every `pollMs` it takes the source's `snapshot()` and diffs it with the previous
 * one by page id and version: added, then invalidated, then replaced (each sorted by page id); a
 * replaced page whose records are listed carries `extra.addedRecords` / `extra.removedRecords`. The
 * first snapshot is the baseline. A failed snapshot is skipped and reported; polling goes on.
 */
import { z } from 'zod';
import { ValidationError } from '../shared/errors.js';
import type { PageChangeEvent } from '../shared/events.js';
import { parseInput } from '../shared/validation.js';
import { sleep } from './abortable.js';
import { SourceError } from './errors.js';
import { type ContextPageSource, NO_WATCH_CONTEXT, type PageRecord, type WatchContext, reportSourceError } from './source.js';

/** Options of {@link SourcePollWatcher}. */
export interface SourcePollWatcherOptions {
  /** Interval between snapshots. Default 5000 ms. */
  pollMs?: number;
  /** sourceId of the events. Default the source's own `sourceId`, else `poll:<constructor name>`. */
  sourceId?: string;
  /** Failed snapshots. Default: reported to the engine (`source-error`), else a process warning. */
  onError?: (error: unknown) => void;
}

const OptionsSchema = z
  .object({
    pollMs: z.number().finite().positive().optional(),
    sourceId: z.string().min(1).optional(),
    onError: z.custom<(error: unknown) => void>((v) => typeof v === 'function', 'must be a function').optional(),
  })
  .strict();

/** Diffs two snapshots into events (exported for single-threaded use and tests). */
export function diffSnapshots(before: ReadonlyMap<string, PageRecord>, after: ReadonlyMap<string, PageRecord>, sourceId: string, ts = Date.now()): PageChangeEvent[] {
  const added: PageChangeEvent[] = [];
  const invalidated: PageChangeEvent[] = [];
  const replaced: PageChangeEvent[] = [];
  const base = (record: PageRecord): Partial<PageChangeEvent> => {
    const out: Partial<PageChangeEvent> = { sourceId, ts };
    if (record.dataType !== undefined) out.dataType = record.dataType;
    return out;
  };
  for (const [pageId, record] of after) {
    const old = before.get(pageId);
    if (old === undefined) {
      added.push({ ...base(record), kind: 'page_added', pageId, extra: { ...record.extra, version: record.version } } as PageChangeEvent);
    } else if (old.version !== record.version) {
      const extra: Record<string, unknown> = { ...record.extra, version: record.version, previousVersion: old.version };
      if (record.records !== undefined || old.records !== undefined) {
        const was = new Set(old.records ?? []);
        const now = new Set(record.records ?? []);
        extra['addedRecords'] = [...now].filter((r) => !was.has(r)).sort();
        extra['removedRecords'] = [...was].filter((r) => !now.has(r)).sort();
      }
      replaced.push({ ...base(record), kind: 'page_replaced', pageId, related: [pageId], extra } as PageChangeEvent);
    }
  }
  for (const [pageId, record] of before) {
    if (!after.has(pageId)) invalidated.push({ ...base(record), kind: 'page_invalidated', pageId, reason: 'gone from snapshot' } as PageChangeEvent);
  }
  const byId = (a: PageChangeEvent, b: PageChangeEvent): number => (a.pageId < b.pageId ? -1 : a.pageId > b.pageId ? 1 : 0);
  return [...added.sort(byId), ...invalidated.sort(byId), ...replaced.sort(byId)];
}

function toMap(records: readonly PageRecord[]): Map<string, PageRecord> {
  const map = new Map<string, PageRecord>();
  records.forEach((record, i) => {
    if (record === null || typeof record !== 'object' || typeof record.pageId !== 'string' || typeof record.version !== 'string') {
      throw new ValidationError(`snapshot[${i}]`, 'must be a PageRecord { pageId: string, version: string }');
    }
    map.set(record.pageId, record);
  });
  return map;
}

export class SourcePollWatcher implements ContextPageSource {
  readonly static = false;
  readonly sourceId: string;
  readonly #source: ContextPageSource;
  readonly #pollMs: number;
  readonly #onError: ((error: unknown) => void) | undefined;

  constructor(source: ContextPageSource, options: SourcePollWatcherOptions = {}) {
    if (source === null || typeof source !== 'object' || typeof source.snapshot !== 'function') {
      throw new ValidationError('source', 'must have a snapshot() method');
    }
    const input = parseInput(OptionsSchema, options, 'options');
    this.#source = source;
    this.#pollMs = input.pollMs ?? 5_000;
    this.#onError = input.onError;
    const own = (source as { sourceId?: unknown }).sourceId;
    this.sourceId = input.sourceId ?? (typeof own === 'string' && own.length > 0 ? own : `poll:${source.constructor?.name ?? 'source'}`);
  }

  async *watch(signal: AbortSignal = new AbortController().signal, context: WatchContext = NO_WATCH_CONTEXT): AsyncGenerator<PageChangeEvent> {
    let previous: Map<string, PageRecord> | undefined;
    while (!signal.aborted) {
      const release = context.hold();
      try {
        let current: Map<string, PageRecord> | undefined;
        try {
          current = toMap(await this.#source.snapshot!());
        } catch (error) {
          this.#report(new SourceError(this.sourceId, 'snapshot failed; skipped until the next poll', { cause: error }), context);
        }
        if (current !== undefined) {
          const events = previous === undefined ? [] : diffSnapshots(previous, current, this.sourceId);
          previous = current;
          // The hold lasts until the consumer asks for the event after the last one: it has them all.
          for (const event of events) {
            if (signal.aborted) return;
            yield event;
          }
        }
      } finally {
        release();
      }
      await sleep(this.#pollMs, signal);
    }
  }

  #report(error: unknown, context: WatchContext): void {
    reportSourceError(this.sourceId, error, context, this.#onError);
  }
}
