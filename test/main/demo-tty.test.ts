/**
 * `converge demo` on a real terminal: run inside tmux (a private server), read with capture-pane.
 * On a TTY it draws a live progress bar with the engine's counters, then the final table and the
 * verdict. Skipped with a warning where tmux is missing; src pass only (same code in dist).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { CLI_ARGS } from '../helpers/cli.js';
import { HAVE_TMUX, shellQuote, TmuxServer } from '../helpers/tmux.js';

const DIST_PASS = process.env.CONVERGE_TEST_TARGET === 'dist';
if (!HAVE_TMUX && !DIST_PASS) console.warn('[converge tests] SKIPPED the demo terminal test: tmux is missing (apt-get install -y tmux)');

describe.skipIf(!HAVE_TMUX || DIST_PASS)('converge demo in tmux', () => {
  const tmux = new TmuxServer('converge-demo-test');
  afterAll(() => tmux.kill());

  it('shows a live storm progress bar with counters, then the table and a verified digest', async () => {
    const command = [process.execPath, ...CLI_ARGS, 'demo', '--files', '80', '--storm', '60'].map(shellQuote).join(' ');
    tmux.run('new-session', '-d', '-s', 'demo', '-x', '140', '-y', '60', `env NO_COLOR=1 CI= ${command}; echo EXITED $?; sleep 600`);
    const screen = await tmux.waitFor('demo', /EXITED \d+/, 170_000, 200);
    expect(screen).toContain('EXITED 0');
    // The bar, finished, stays on the screen with the counters it last showed.
    expect(screen).toMatch(/storm .*100% \| 60\/60 ops \| events [\d,]+ \| dispatches [\d,]+/);
    expect(screen).toMatch(/│ files \(final\)\s+│\s+[\d,]+ │/);
    expect(screen).toMatch(/OK: converged digest [0-9a-f]{16}… equals the from-scratch recomputation/);
    // NO_COLOR: no escape sequences leak into the text.
    expect(screen).not.toContain('\x1b[');
  }, 180_000);
});
