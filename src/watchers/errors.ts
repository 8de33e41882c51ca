/** Errors of sources and watchers. Each keeps a stable `code` and crosses threads with its class. */
import { ConvergeError, registerErrorClass } from '../shared/errors.js';

/** Codes of the errors in this file. `ENOENT` is Node's own code, kept so existing checks work. */
export const WatcherErrorCode = {
  NOT_FOUND: 'ENOENT',
  BACKEND: 'CONVERGE_WATCHER_BACKEND',
  SOURCE: 'CONVERGE_SOURCE',
  GIT_FETCH: 'CONVERGE_GIT_FETCH',
  CHECKPOINT: 'CONVERGE_CHECKPOINT',
} as const;

/** A watched root (directory, repository) does not exist. */
export class SourceNotFoundError extends ConvergeError {
  readonly path: string;
  constructor(path: string, options: { cause?: unknown } = {}) {
    super(`watched path does not exist: ${path}`, { code: WatcherErrorCode.NOT_FOUND, cause: options.cause });
    this.path = path;
  }
}

/**
 * The native file watcher reported an error or could not start. Not fatal: the watcher rescans (or
 * falls back to polling) so that no change is lost, and reports this as a `source-error`.
 */
export class WatcherBackendError extends ConvergeError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { code: WatcherErrorCode.BACKEND, cause: options.cause });
  }
}

/** A source or one of its parts failed (a crashing child watcher, a failed snapshot). */
export class SourceError extends ConvergeError {
  readonly sourceId: string;
  constructor(sourceId: string, message: string, options: { cause?: unknown } = {}) {
    super(`${sourceId}: ${message}`, { code: WatcherErrorCode.SOURCE, cause: options.cause });
    this.sourceId = sourceId;
  }
}

/** A git fetch failed; it is retried with backoff. `failures` counts consecutive failures. */
export class GitFetchError extends ConvergeError {
  readonly failures: number;
  constructor(url: string, failures: number, options: { cause?: unknown } = {}) {
    super(`git fetch from ${url} failed (${failures} in a row); retrying with backoff`, { code: WatcherErrorCode.GIT_FETCH, cause: options.cause });
    this.failures = failures;
  }
}

/** A checkpoint could not be made or restored. */
export class CheckpointError extends ConvergeError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { code: WatcherErrorCode.CHECKPOINT, cause: options.cause });
  }
}

for (const cls of [SourceNotFoundError, WatcherBackendError, SourceError, GitFetchError, CheckpointError]) registerErrorClass(cls);
