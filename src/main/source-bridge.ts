/**
 * The bridge of `engine.mapSource`: reads a non-static source's `watch(signal)` stream and feeds
 * each event into the engine, reporting failures as `source-error`.
 *
 * Owned by the watchers work; the engine only starts a bridge, keeps its promise, and aborts and
 * awaits it on close.
 */
import type { PageChangeEvent } from '../shared/events.js';

/** A source of page changes (DESIGN §4). */
export interface ContextPageSource {
  readonly static: boolean;
  watch?(signal: AbortSignal): AsyncIterable<PageChangeEvent>;
  snapshot?(): Promise<unknown[]>;
}

/** What a bridge writes to. */
export interface SourceSink {
  dispatchChange(event: PageChangeEvent): Promise<void>;
  reportError(info: { sourceId: string; error: unknown }): void;
}

/** Runs until the source's stream ends or `signal` aborts; never rejects. */
export async function runSourceBridge(source: ContextPageSource, signal: AbortSignal, sink: SourceSink): Promise<void> {
  try {
    for await (const event of source.watch!(signal)) {
      if (signal.aborted) break;
      try {
        await sink.dispatchChange(event);
      } catch (error) {
        sink.reportError({ sourceId: event?.sourceId ?? 'unknown', error });
      }
    }
  } catch (error) {
    if (!signal.aborted) sink.reportError({ sourceId: 'unknown', error });
  }
}
