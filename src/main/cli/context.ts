/**
 * What every `converge` subcommand gets: where to write, how to style it, and the error that ends a
 * command with one line that says what to do.
 */
import { type Styles, stylesFor } from './output.js';
import type { CommandSpec, FlagSpec, Parsed } from './args.js';

/** A command that cannot go on, with the one line that tells the user what to do. Exit code 1 by default. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** Where a command writes. Tests and the entry point pass the process streams. */
export interface CliIo {
  readonly stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
  readonly env: NodeJS.ProcessEnv;
}

/** The context a running command gets. */
export interface CliContext extends CliIo {
  readonly program: string;
  /** Styles for stdout (off under NO_COLOR or when stdout is not a terminal). */
  readonly styles: Styles;
  /** Styles for stderr. */
  readonly errorStyles: Styles;
  /** Aborted on SIGINT / SIGTERM: long-running commands stop cleanly and exit 0. */
  readonly signal: AbortSignal;
  /** Writes a line to stdout. */
  out(line?: string): void;
  /** Writes a line to stderr. */
  err(line?: string): void;
}

/** A subcommand: its spec and what it does. Resolves to the exit code. */
export interface Command<F extends Record<string, FlagSpec> = Record<string, FlagSpec>> {
  readonly spec: CommandSpec<F>;
  run(parsed: Parsed<F>, context: CliContext): Promise<number>;
}

/** Declares a command with its flags' types inferred. */
export function defineCommand<F extends Record<string, FlagSpec>>(command: Command<F>): Command {
  return command as unknown as Command;
}

/** Builds the context for `io`. */
export function createContext(io: CliIo, program: string, signal: AbortSignal): CliContext {
  return {
    ...io,
    program,
    signal,
    styles: stylesFor(io.stdout, io.env),
    errorStyles: stylesFor(io.stderr, io.env),
    out: (line = '') => void io.stdout.write(`${line}\n`),
    err: (line = '') => void io.stderr.write(`${line}\n`),
  };
}

/** Resolves when `signal` aborts (immediately if it already has). */
export function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
