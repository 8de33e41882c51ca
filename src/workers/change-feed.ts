/**
 * The change feed: a fixed-size ring of the newest decisions, kept as parallel arrays so that
 * recording one (which happens for every event and every dispatch) allocates nothing; entry objects
 * are built only when someone reads the feed.
 */
import type { PageChangeEvent } from '../shared/events.js';
import type { ChangeFeedEntry, SkippedReason } from '../shared/protocol.js';

const REASONS: readonly (SkippedReason | undefined)[] = [undefined, 'rate_limited', 'damped', 'budget_exhausted', 'depth_exceeded'];
const REASON_CODE = { rate_limited: 1, damped: 2, budget_exhausted: 3, depth_exceeded: 4 } as const;

export class ChangeFeed {
  readonly #size: number;
  readonly #events: (PageChangeEvent | undefined)[];
  readonly #subscriptions: (string | null)[];
  readonly #episodes: (string | null)[];
  readonly #reasons: Uint8Array;
  #next = 0;
  #seq = 0;

  constructor(size: number) {
    this.#size = Math.max(0, size);
    this.#events = new Array(this.#size).fill(undefined);
    this.#subscriptions = new Array(this.#size).fill(null);
    this.#episodes = new Array(this.#size).fill(null);
    this.#reasons = new Uint8Array(this.#size);
  }

  record(episodeId: string | null, subscriptionId: string | null, event: PageChangeEvent, reason: SkippedReason | undefined): void {
    if (this.#size === 0) return;
    const at = this.#next;
    this.#seq++;
    this.#events[at] = event;
    this.#subscriptions[at] = subscriptionId;
    this.#episodes[at] = episodeId;
    this.#reasons[at] = reason === undefined ? 0 : REASON_CODE[reason];
    this.#next = at + 1 === this.#size ? 0 : at + 1;
  }

  /** The newest `limit` entries, oldest first. */
  read(limit: number): ChangeFeedEntry[] {
    const count = Math.min(limit, this.#seq, this.#size);
    const out: ChangeFeedEntry[] = [];
    for (let i = count; i > 0; i--) {
      const at = (this.#next - i + this.#size) % this.#size;
      const event = this.#events[at]!;
      const entry: ChangeFeedEntry = {
        seq: this.#seq - i + 1,
        ts: event.ts ?? 0,
        episodeId: this.#episodes[at] ?? null,
        subscriptionId: this.#subscriptions[at] ?? null,
        pageId: event.pageId,
        kind: event.kind,
        sourceId: event.sourceId,
      };
      const reason = REASONS[this.#reasons[at]!];
      if (reason !== undefined) entry.skippedReason = reason;
      out.push(entry);
    }
    return out;
  }
}
