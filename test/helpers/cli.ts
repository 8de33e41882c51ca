/**
 * Running the `converge` command in tests as a user does: the built bin (dist/main/cli.js) under
 * CONVERGE_TEST_TARGET=dist, the source through tsx otherwise.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** The node arguments that start the CLI for the current test target. */
export const CLI_ARGS: readonly string[] = process.env.CONVERGE_TEST_TARGET === 'dist' ? [join(root, 'dist/main/cli.js')] : ['--import', 'tsx', join(root, 'src/main/cli.ts')];

/** A running `converge …` started with {@link startCli}. */
export interface Started {
  child: ChildProcessWithoutNullStreams;
  /** The match of the `ready` pattern. */
  match: RegExpMatchArray;
  /** Everything written so far, stdout then stderr. */
  output: () => string;
  exited: Promise<number | null>;
  /** Resolves with the first match of `pattern` in stdout (now or later); rejects after `timeoutMs`. */
  until(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
}

/** Starts a long-running `converge …` (NO_COLOR); resolves once stdout matches `ready` (30 s deadline). */
export function startCli(args: string[], ready: RegExp, env: Record<string, string> = {}): Promise<Started> {
  const child = spawn(process.execPath, [...CLI_ARGS, ...args], { cwd: root, env: { ...process.env, NO_COLOR: '1', ...env } });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const until = (pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> =>
    new Promise((found, fail) => {
      const check = (): boolean => {
        const hit = stdout.match(pattern);
        if (hit === null) return false;
        clearTimeout(timer);
        child.stdout.off('data', check);
        found(hit);
        return true;
      };
      const timer = setTimeout(() => {
        child.stdout.off('data', check);
        fail(new Error(`no output matching ${pattern} within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
      }, timeoutMs);
      if (!check()) child.stdout.on('data', check);
    });
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    const failed = (code: number | null): void => reject(new Error(`exited ${code} before ready\nstdout: ${stdout}\nstderr: ${stderr}`));
    void exited.then(failed);
    until(ready).then(
      (match) => resolve({ child, match, output: () => stdout + stderr, exited, until }),
      (error: unknown) => {
        child.kill('SIGKILL');
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
