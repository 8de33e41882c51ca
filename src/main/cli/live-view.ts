/**
 * The live terminal view of `converge watch` on a TTY: a screen redrawn in place (the terminal's
 * alternate screen, restored on exit) with the engine's counters, the episodes and the latest
 * changes. {@link renderWatchScreen} is pure (state in, lines out); {@link LiveScreen} owns the
 * terminal: it redraws at most every `intervalMs` and only when something changed.
 */
import type { EngineCounters } from '../../shared/protocol.js';
import type { Styles } from './output.js';

/** One change as the view lists it. */
export interface ViewChange {
  readonly at: number;
  readonly kind: string;
  readonly pageId: string;
}

/** What the view shows. */
export interface WatchViewState {
  readonly title: string;
  readonly state: string;
  readonly counters: EngineCounters | undefined;
  readonly episodes: number;
  readonly lastEpisode: { readonly id: string; readonly durationMs: number } | undefined;
  /** Newest last. */
  readonly changes: readonly ViewChange[];
  readonly changesSeen: number;
}

const clip = (text: string, width: number): string => ([...text].length <= width ? text : `${[...text].slice(0, Math.max(0, width - 1)).join('')}…`);
const time = (ms: number): string => new Date(ms).toISOString().slice(11, 23);

/** The screen for `state` in a terminal of `width` × `height` (at least a few lines). */
export function renderWatchScreen(state: WatchViewState, width: number, height: number, styles: Styles): string[] {
  const c = state.counters;
  const lines = [
    `${styles.bold(clip(state.title, width - 12))}  ${styles.cyan(state.state)}`,
    c === undefined
      ? styles.dim('counters: waiting for the engine…')
      : clip(`events ${c.eventsReceived}   dispatched ${c.dispatchesEmitted}   damped ${c.dispatchesDamped}   rate-limited ${c.dispatchesRateLimited}   failed ${c.dispatchesFailed}`, width),
    clip(
      `episodes ${state.episodes}${state.lastEpisode === undefined ? '' : `   last ${state.lastEpisode.id} settled in ${state.lastEpisode.durationMs.toFixed(0)} ms`}   changes shown ${state.changesSeen}`,
      width,
    ),
    styles.dim('─'.repeat(Math.max(10, Math.min(width, 120)))),
  ];
  const room = Math.max(1, height - lines.length - 1);
  const shown = state.changes.slice(-room);
  if (shown.length === 0) lines.push(styles.dim('no change yet: edit a file in the watched directory'));
  for (const change of shown) lines.push(`${styles.dim(time(change.at))} ${clip(`${change.kind.padEnd(24)} ${change.pageId}`, width - 13)}`);
  lines.push(styles.dim('Ctrl-C to stop'));
  return lines;
}

/** A terminal stream the live screen can drive. */
export interface TerminalStream {
  write(chunk: string): boolean;
  readonly columns?: number;
  readonly rows?: number;
  on?(event: 'resize', listener: () => void): unknown;
  off?(event: 'resize', listener: () => void): unknown;
}

const ENTER = '\u001b[?1049h\u001b[?25l';
const LEAVE = '\u001b[?25h\u001b[?1049l';
const HOME_CLEAR = '\u001b[H\u001b[2J';

/** Redraws a screen in place on a TTY. */
export class LiveScreen {
  readonly #stream: TerminalStream;
  readonly #render: (width: number, height: number) => string[];
  readonly #timer: NodeJS.Timeout;
  readonly #onResize = (): void => this.invalidate();
  #dirty = true;
  #closed = false;

  constructor(stream: TerminalStream, render: (width: number, height: number) => string[], intervalMs = 100) {
    this.#stream = stream;
    this.#render = render;
    stream.write(ENTER);
    stream.on?.('resize', this.#onResize);
    this.#timer = setInterval(() => this.#draw(), intervalMs);
    this.#draw();
  }

  /** Something changed: redraw at the next tick. */
  invalidate(): void {
    this.#dirty = true;
  }

  #draw(): void {
    if (!this.#dirty || this.#closed) return;
    this.#dirty = false;
    const lines = this.#render(this.#stream.columns ?? 100, this.#stream.rows ?? 30);
    this.#stream.write(`${HOME_CLEAR}${lines.join('\n')}`);
  }

  /** Restores the terminal (normal screen, cursor). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#stream.off?.('resize', this.#onResize);
    this.#stream.write(LEAVE);
  }
}
