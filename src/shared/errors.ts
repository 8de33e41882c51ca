/**
 * Every error the engine throws is a {@link ConvergeError} subclass with a stable `code`.
 *
 * Errors cross thread boundaries as plain data ({@link SerializedError}) and are rebuilt with their
 * class on the other side by {@link deserializeError}: structured clone would keep the message but
 * lose the class, the code and any extra fields.
 */

/** Stable error codes. Never rename one: users switch on them. */
export const ErrorCode = {
  UNKNOWN: 'CONVERGE_UNKNOWN',
  VALIDATION: 'CONVERGE_VALIDATION',
  RING_FULL: 'CONVERGE_RING_FULL',
  FRAME_TOO_LARGE: 'CONVERGE_FRAME_TOO_LARGE',
  CLOSED: 'CONVERGE_CLOSED',
  STATIC_SOURCE: 'CONVERGE_STATIC_SOURCE',
  NOT_AUTHORIZED: 'CONVERGE_NOT_AUTHORIZED',
  REGISTRY_FULL: 'CONVERGE_REGISTRY_FULL',
  DUPLICATE_ID: 'CONVERGE_DUPLICATE_ID',
  NOT_FOUND: 'CONVERGE_NOT_FOUND',
  PROTOCOL: 'CONVERGE_PROTOCOL',
  WORKER_CRASHED: 'CONVERGE_WORKER_CRASHED',
  TIMEOUT: 'CONVERGE_TIMEOUT',
  STORE: 'CONVERGE_STORE',
  INVALID_STATE: 'CONVERGE_INVALID_STATE',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Base class of every error the engine throws. */
export class ConvergeError extends Error {
  readonly code: string;
  constructor(message: string, options: { code?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code ?? ErrorCode.UNKNOWN;
  }
}

/** One problem found while validating input: the dotted path of the field and what is wrong. */
export interface ValidationIssue {
  readonly path: string;
  readonly message: string;
}

/** Input failed validation. `field` names the first offending field (dotted path, e.g. `predicate.edgeReach.root`). */
export class ValidationError extends ConvergeError {
  readonly field: string;
  readonly issues: readonly ValidationIssue[];
  constructor(field: string, message: string, options: { issues?: readonly ValidationIssue[]; cause?: unknown } = {}) {
    super(field === '' ? message : `${field}: ${message}`, { code: ErrorCode.VALIDATION, cause: options.cause });
    this.field = field;
    this.issues = options.issues ?? [{ path: field, message }];
  }
}

/** The ring had no room and the producer asked not to wait (`onFull: 'throw'`). */
export class RingFullError extends ConvergeError {
  constructor(readonly requestedBytes: number, readonly freeBytes: number) {
    super(`ring is full: ${requestedBytes} bytes requested, ${freeBytes} free (onFull: 'throw')`, { code: ErrorCode.RING_FULL });
  }
}

/**
 * A frame can never fit: it is larger than the ring's largest frame. `field` names the input that
 * made it (`events[3]` for an event too large on its own), when known.
 */
export class FrameTooLargeError extends ConvergeError {
  readonly field: string | undefined;
  constructor(readonly frameBytes: number, readonly maxFrameBytes: number, options: { field?: string } = {}) {
    const what = options.field === undefined ? 'frame' : `${options.field}: encoded as a frame`;
    super(`${what} of ${frameBytes} bytes exceeds the ring's largest frame of ${maxFrameBytes} bytes; raise ringBytes or split the batch`, {
      code: ErrorCode.FRAME_TOO_LARGE,
    });
    this.field = options.field;
  }
}

/** The engine (or another closable part) is closed; the call cannot be served. */
export class ClosedError extends ConvergeError {
  constructor(what = 'engine') {
    super(`${what} is closed`, { code: ErrorCode.CLOSED });
  }
}

/** `mapSource` was given a static source, which has nothing to watch. */
export class StaticSourceError extends ConvergeError {
  constructor(message = 'source is static: it has no watch() to bridge; read it with snapshot() instead') {
    super(message, { code: ErrorCode.STATIC_SOURCE });
  }
}

/** An agent acted on a task (or resource) it does not hold. */
export class NotAuthorizedError extends ConvergeError {
  constructor(message: string) {
    super(message, { code: ErrorCode.NOT_AUTHORIZED });
  }
}

/** The subscription registry reached its capacity. */
export class SubscriptionRegistryFullError extends ConvergeError {
  constructor(readonly capacity: number) {
    super(`subscription registry is full (capacity ${capacity}); unsubscribe first or raise the capacity`, { code: ErrorCode.REGISTRY_FULL });
  }
}

/** An id that must be unique is already taken. */
export class DuplicateIdError extends ConvergeError {
  constructor(readonly kind: string, readonly id: string) {
    super(`${kind} id ${JSON.stringify(id)} already exists`, { code: ErrorCode.DUPLICATE_ID });
  }
}

/** A thing looked up by id does not exist. */
export class NotFoundError extends ConvergeError {
  constructor(readonly kind: string, readonly id: string) {
    super(`${kind} ${JSON.stringify(id)} not found`, { code: ErrorCode.NOT_FOUND });
  }
}

/** A message or key did not follow the protocol (wrong prefix, unknown tag, corrupt frame). */
export class ProtocolError extends ConvergeError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { code: ErrorCode.PROTOCOL, cause: options.cause });
  }
}

/** A worker thread exited or crashed while work was outstanding. */
export class WorkerCrashedError extends ConvergeError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { code: ErrorCode.WORKER_CRASHED, cause: options.cause });
  }
}

/** An operation did not finish in the time allowed. */
export class TimeoutError extends ConvergeError {
  constructor(message: string) {
    super(message, { code: ErrorCode.TIMEOUT });
  }
}

/** A persistence backend failed (SQLite, PostgreSQL). `cause` holds the driver's error. */
export class StoreError extends ConvergeError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { code: ErrorCode.STORE, cause: options.cause });
  }
}

/** The call is not valid in the object's current state (e.g. registering a trigger while running). */
export class InvalidStateError extends ConvergeError {
  constructor(message: string) {
    super(message, { code: ErrorCode.INVALID_STATE });
  }
}

/** An error as plain data, safe for structured clone or msgpack. */
export interface SerializedError {
  readonly name: string;
  readonly code: string;
  readonly message: string;
  readonly stack?: string;
  /** Own enumerable fields beyond name/message/stack (e.g. `field`, `issues`, `capacity`). */
  readonly props?: Record<string, unknown>;
  readonly cause?: SerializedError;
  /** An `AggregateError`'s inner errors (the first {@link MAX_AGGREGATED}). */
  readonly errors?: readonly SerializedError[];
}

type ErrorClass = new (...args: any[]) => ConvergeError;

const registry = new Map<string, ErrorClass>(
  (
    [
      ConvergeError,
      ValidationError,
      RingFullError,
      FrameTooLargeError,
      ClosedError,
      StaticSourceError,
      NotAuthorizedError,
      SubscriptionRegistryFullError,
      DuplicateIdError,
      NotFoundError,
      ProtocolError,
      WorkerCrashedError,
      TimeoutError,
      StoreError,
      InvalidStateError,
    ] as ErrorClass[]
  ).map((cls) => [cls.name, cls]),
);

/** Makes a subclass defined outside this file rebuildable by {@link deserializeError}. */
export function registerErrorClass(cls: ErrorClass): void {
  registry.set(cls.name, cls);
}

const MAX_CAUSE_DEPTH = 8;
/** Inner errors of an `AggregateError` kept across a thread boundary. */
const MAX_AGGREGATED = 32;

/**
 * Turns any thrown value into plain data that keeps class name, code, fields, cause chain and an
 * `AggregateError`'s inner errors. A thrown non-Error keeps a string `code` and `message` it carries
 * (`throw { code: 'E_QUOTA', message: '…' }`), else it is described by its string form.
 */
export function serializeError(error: unknown, depth = 0): SerializedError {
  if (!(error instanceof Error)) return serializeThrownValue(error);
  const props: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(error)) {
    if (key === 'cause' || key === 'name' || key === 'message' || key === 'stack') continue;
    if (isPlain(value)) props[key] = value;
  }
  const rawCode = (error as { code?: unknown }).code;
  const code = typeof rawCode === 'string' ? rawCode : ErrorCode.UNKNOWN;
  const out: { -readonly [K in keyof SerializedError]: SerializedError[K] } = { name: error.name, code, message: error.message };
  if (error.stack !== undefined) out.stack = error.stack;
  if (Object.keys(props).length > 0) out.props = props;
  if (error.cause !== undefined && depth < MAX_CAUSE_DEPTH) out.cause = serializeError(error.cause, depth + 1);
  const inner = (error as { errors?: unknown }).errors;
  if (error instanceof AggregateError && Array.isArray(inner) && depth < MAX_CAUSE_DEPTH) {
    out.errors = inner.slice(0, MAX_AGGREGATED).map((e: unknown) => serializeError(e, depth + 1));
  }
  return out;
}

function serializeThrownValue(value: unknown): SerializedError {
  if (typeof value === 'string') return { name: 'Error', code: ErrorCode.UNKNOWN, message: value };
  if (value !== null && typeof value === 'object') {
    const { code, message } = value as { code?: unknown; message?: unknown };
    if (typeof code === 'string' || typeof message === 'string') {
      return { name: 'Error', code: typeof code === 'string' ? code : ErrorCode.UNKNOWN, message: typeof message === 'string' ? message : safeString(value) };
    }
  }
  return { name: 'Error', code: ErrorCode.UNKNOWN, message: safeString(value) };
}

/** The built-in error classes a task may throw: they come back as themselves, with a `code`. */
const builtins = new Map<string, new (...args: any[]) => Error>(
  ([Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError, AggregateError] as (new (...args: any[]) => Error)[]).map((cls) => [cls.name, cls]),
);

/**
 * Rebuilds an error from {@link serializeError}'s output. Known ConvergeError classes come back as
 * themselves (`instanceof` works), and so do the built-in ones (`Error`, `TypeError`, `RangeError`,
 * `SyntaxError`, `ReferenceError`, `EvalError`, `URIError`, `AggregateError`: DESIGN §3, a task's
 * error keeps its class), carrying the `code` they were sent with (`CONVERGE_UNKNOWN` when they had
 * none); anything else comes back as a ConvergeError carrying the original name and code, so callers
 * always get a coded error.
 */
export function deserializeError(data: SerializedError): ConvergeError | (Error & { readonly code: string }) {
  const builtin = registry.has(data.name) ? undefined : builtins.get(data.name);
  const cls = registry.get(data.name) ?? ConvergeError;
  // Bypass the constructor: subclass constructors build their message from arguments we do not have.
  // A built-in is constructed (a real native error: `Error.isError`, inspection), then overwritten.
  const error = (builtin === undefined ? Object.create(cls.prototype) : Reflect.construct(builtin, builtin === AggregateError ? [[]] : [])) as Error & { code: string } & Record<string, unknown>;
  Object.defineProperty(error, 'message', { value: data.message, writable: true, configurable: true, enumerable: false });
  Object.defineProperty(error, 'name', { value: data.name, writable: true, configurable: true, enumerable: false });
  Object.defineProperty(error, 'stack', { value: data.stack ?? `${data.name}: ${data.message}`, writable: true, configurable: true, enumerable: false });
  (error as { code: string }).code = data.code;
  for (const [key, value] of Object.entries(data.props ?? {})) {
    if (key !== 'code') error[key] = value;
  }
  if (data.cause !== undefined) {
    Object.defineProperty(error, 'cause', { value: deserializeError(data.cause), writable: true, configurable: true, enumerable: false });
  }
  if (data.errors !== undefined) {
    Object.defineProperty(error, 'errors', { value: data.errors.map(deserializeError), writable: true, configurable: true, enumerable: false });
  }
  return error;
}

function isPlain(value: unknown): boolean {
  if (value === null) return true;
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
      return true;
    case 'object':
      try {
        JSON.stringify(value);
        return true;
      } catch {
        return false;
      }
    default:
      return false;
  }
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
