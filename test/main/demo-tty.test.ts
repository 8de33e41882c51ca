/**
 * `converge demo` on a real terminal: run inside tmux (a private server), read with capture-pane.
 * On a TTY it draws a live progress bar with the engine's counters, then the final table and the
 * verdict. Skipped with a warning where tmux is missing; src pass only (same code in dist).
 */
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI_ARGS } from '../helpers/cli.js';

const HAVE_TMUX = (() => {
  try {
    execFileSync('tmux', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const DIST_PASS = process.env.CONVERGE_TEST_TARGET === 'dist';
if (!HAVE_TMUX && !DIST_PASS) console.warn('[converge tests] SKIPPED the demo terminal test: tmux is missing (apt-get install -y tmux)');

const quote = (arg: string): string => `'${arg.replaceAll("'", "'\\''")}'`;

describe.skipIf(!HAVE_TMUX || DIST_PASS)('converge demo in tmux', () => {
  const socket = `converge-demo-test-${process.pid}`;
  const tmux = (...args: string[]): string => execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
  afterAll(() => {
    try {
      tmux('kill-server');
    } catch {
      // Already gone.
    }
  });

  /** Polls the pane until `pattern` shows (deadline `timeoutMs`). */
  async function pane(pattern: RegExp, timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = tmux('capture-pane', '-p', '-S', '-200', '-t', 'demo');
      if (pattern.test(text)) return text;
      if (Date.now() > deadline) throw new Error(`the pane never showed ${pattern}:\n${text}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  it('shows a live storm progress bar with counters, then the table and a verified digest', async () => {
    const command = [process.execPath, ...CLI_ARGS, 'demo', '--files', '80', '--storm', '60'].map(quote).join(' ');
    tmux('new-session', '-d', '-s', 'demo', '-x', '140', '-y', '60', `env NO_COLOR=1 CI= ${command}; echo EXITED $?; sleep 600`);
    const screen = await pane(/EXITED \d+/, 170_000);
    expect(screen).toContain('EXITED 0');
    // The bar, finished, stays on the screen with the counters it last showed.
    expect(screen).toMatch(/storm .*100% \| 60\/60 ops \| events [\d,]+ \| dispatches [\d,]+/);
    expect(screen).toMatch(/│ files \(final\)\s+│\s+[\d,]+ │/);
    expect(screen).toMatch(/OK: converged digest [0-9a-f]{16}… equals the from-scratch recomputation/);
    // NO_COLOR: no escape sequences leak into the text.
    expect(screen).not.toContain('\x1b[');
  }, 180_000);
});
