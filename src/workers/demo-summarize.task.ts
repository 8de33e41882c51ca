/**
 * The demo's first derivation stage, run as a `task` subscription in the colony pool: summarise the
 * file a change names, straight from disk, and emit its `summary:<path>` page (or invalidate it when
 * the file is gone). Reading the disk — not the event — makes the stage idempotent: whatever order
 * the dispatches of one file run in, the read that starts last sees the final content, and its
 * `readAt` (a process-wide monotonic clock) lets the next stage keep exactly that one.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { summarizeContent } from '../shared/demo-model.js';
import type { PageChangeEvent } from '../shared/events.js';

interface SummaryContext {
  dispatchChange(events: PageChangeEvent | readonly PageChangeEvent[]): unknown;
}

export const SUMMARY_DATA_TYPE = 'file_summary';

export default async function summarize(event: PageChangeEvent, ctx: SummaryContext): Promise<void> {
  const relativePath = (event.extra?.relativePath as string | undefined) ?? event.pageId.replace(/^file:/, '');
  const root = event.sourceId.replace(/^file:/, '');
  const readAt = process.hrtime.bigint().toString();
  const pageId = `summary:${relativePath}`;
  let content: Buffer;
  try {
    content = await readFile(join(root, relativePath));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' && (error as NodeJS.ErrnoException).code !== 'EISDIR') throw error;
    ctx.dispatchChange({ kind: 'page_invalidated', pageId, sourceId: 'demo:summarize', dataType: SUMMARY_DATA_TYPE, reason: 'file gone', extra: { path: relativePath, readAt } });
    return;
  }
  const summary = summarizeContent(content);
  ctx.dispatchChange({
    kind: 'page_added',
    pageId,
    sourceId: 'demo:summarize',
    dataType: SUMMARY_DATA_TYPE,
    extra: { path: relativePath, readAt, bytes: summary.bytes, lines: summary.lines, words: summary.words, hash: summary.hash, value: summary.lines },
  });
}
