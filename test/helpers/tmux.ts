/**
 * A terminal for tests: a private tmux server (its own socket, so no user session is touched), a
 * command run in a session of it, and its screen read with capture-pane until a pattern shows.
 */
import { execFileSync } from 'node:child_process';

/** Whether tmux is installed; tests that need it skip with a warning when it is not. */
export const HAVE_TMUX = (() => {
  try {
    execFileSync('tmux', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** Quotes one argument for the shell line tmux runs. */
export const shellQuote = (arg: string): string => `'${arg.replaceAll("'", "'\\''")}'`;

/** A private tmux server for one test file. */
export class TmuxServer {
  readonly #socket: string;

  constructor(name: string) {
    this.#socket = `${name}-${process.pid}`;
  }

  run(...args: string[]): string {
    return execFileSync('tmux', ['-L', this.#socket, ...args], { encoding: 'utf8' });
  }

  /** Polls session `target`'s pane (with `history` lines of scrollback) until `pattern` shows. */
  async waitFor(target: string, pattern: RegExp, timeoutMs: number, history = 0): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = this.run('capture-pane', '-p', ...(history > 0 ? ['-S', `-${history}`] : []), '-t', target);
      if (pattern.test(text)) return text;
      if (Date.now() > deadline) throw new Error(`the pane never showed ${pattern}:\n${text}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  kill(): void {
    try {
      this.run('kill-server');
    } catch {
      // Already gone.
    }
  }
}
