/**
 * `converge watch` on a real terminal: run inside tmux (a private server, so no user session is
 * touched), read with capture-pane, stopped with send-keys C-c. On a TTY the view is redrawn in
 * place (counters, episodes, latest changes) and the terminal is restored on exit. Skipped with a
 * warning where tmux is missing; runs in the src pass only (the view is the same code in dist).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_ARGS } from '../helpers/cli.js';
import { HAVE_TMUX, shellQuote, TmuxServer } from '../helpers/tmux.js';
import { renderWatchScreen } from '../../src/main/cli/live-view.js';
import { stylesFor } from '../../src/main/cli/output.js';

const DIST_PASS = process.env.CONVERGE_TEST_TARGET === 'dist';
if (!HAVE_TMUX && !DIST_PASS) console.warn('[converge tests] SKIPPED the terminal view test: tmux is missing (apt-get install -y tmux)');

describe('the live view of converge watch', () => {
  it('renders counters, episodes and the newest changes that fit, clipped to the width', () => {
    const changes = Array.from({ length: 50 }, (_, i) => ({ at: Date.UTC(2026, 0, 1, 12, 0, 0, i), kind: 'page_replaced', pageId: `file:src/${'deep/'.repeat(i % 3 === 0 ? 30 : 1)}f${i}.ts` }));
    const counters = { eventsReceived: 50, dispatchesAttempted: 50, dispatchesEmitted: 48, dispatchesDamped: 2, dispatchesRateLimited: 0, dispatchesDeferred: 0, dispatchesFailed: 0, dispatchesBudgetExhausted: 0, dispatchesDepthExceeded: 0, budgetExhausted: 0 };
    const lines = renderWatchScreen({ title: 'converge watch /repo', state: 'watching — converged', counters, episodes: 3, lastEpisode: { id: 'ep_1', durationMs: 12.4 }, changes, changesSeen: 50 }, 80, 12, stylesFor({ isTTY: false }, {}));
    expect(lines).toHaveLength(12);
    expect(lines[1]).toBe('events 50   dispatched 48   damped 2   rate-limited 0   failed 0');
    expect(lines[2]).toBe('episodes 3   last ep_1 settled in 12 ms   changes shown 50');
    // The newest 7 changes fit (12 lines: 4 header, 7 changes, the footer), oldest first.
    expect(lines.slice(4, 11).map((line) => line.match(/f(\d+)\.ts|…$/)?.[0])).toEqual(['f43.ts', 'f44.ts', '…', 'f46.ts', 'f47.ts', '…', 'f49.ts']);
    for (const line of lines) expect([...line].length).toBeLessThanOrEqual(80);
    expect(lines.at(-1)).toBe('Ctrl-C to stop');
  });
});

describe.skipIf(!HAVE_TMUX || DIST_PASS)('converge watch in tmux', () => {
  const tmux = new TmuxServer('converge-test');
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'converge-tty-'));
  });
  afterAll(() => {
    tmux.kill();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  const pane = (pattern: RegExp, timeoutMs = 30_000): Promise<string> => tmux.waitFor('watch', pattern, timeoutMs);

  it('redraws in place on a terminal and restores it on Ctrl-C', async () => {
    const command = [process.execPath, ...CLI_ARGS, 'watch', dir].map(shellQuote).join(' ');
    tmux.run('new-session', '-d', '-s', 'watch', '-x', '100', '-y', '24', `env NO_COLOR=1 ${command}; echo EXITED $?; sleep 600`);
    let screen = await pane(/watching — /);
    expect(screen).toContain(`converge watch ${dir}`);
    expect(screen).toContain('no change yet');
    // Files written before the watcher scanned the tree are its initial state: write until one shows.
    for (let i = 0; ; i++) {
      writeFileSync(join(dir, `tty-${i}.txt`), String(i));
      try {
        screen = await pane(new RegExp(`page_added\\s+file:tty-${i}\\.txt`), 8_000);
        break;
      } catch (error) {
        if (i >= 4) throw error;
      }
    }
    await pane(/episodes [1-9]\d*\s+last ep_\w+ settled in \d+ ms/);
    // The counters come from the engine's status a moment later.
    screen = await pane(/^events [1-9]\d*\s+dispatched [1-9]/m);
    // One screen, redrawn: the title shows once, not once per update.
    expect(screen.match(/converge watch \//g)).toHaveLength(1);
    tmux.run('send-keys', '-t', 'watch', 'C-c');
    screen = await pane(/EXITED \d+/);
    expect(screen).toMatch(/converge watch: stopped after [1-9]\d* changes in [1-9]\d* episodes/);
    expect(screen).toContain('EXITED 0');
    // The alternate screen is gone: the live view's lines are no longer on the terminal.
    expect(screen).not.toContain('Ctrl-C to stop');
  });
});
