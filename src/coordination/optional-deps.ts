/**
 * The database drivers are optional peer dependencies: `pg` for {@link PostgresStore}, `better-sqlite3`
 * for {@link SqliteStore}. Neither is imported until a store first needs it, so an application that
 * uses only the memory store installs (and compiles) neither. A missing driver is a
 * {@link MissingDependencyError} that names the package to install.
 *
 * The driver types here are minimal structural descriptions of what the stores call, so that the
 * published declarations never refer to `@types/pg` or `@types/better-sqlite3`.
 */
import { ConvergeError, registerErrorClass } from '../shared/errors.js';

/** Code of {@link MissingDependencyError}. */
export const MISSING_DEPENDENCY_CODE = 'CONVERGE_MISSING_DEPENDENCY';

/**
 * An optional peer dependency that a feature needs is not installed (or failed to load).
 * `packageName` is what to `npm install`. Code: `CONVERGE_MISSING_DEPENDENCY`.
 */
export class MissingDependencyError extends ConvergeError {
  readonly packageName: string;
  constructor(packageName: string, feature: string, options: { cause?: unknown } = {}) {
    const why = options.cause instanceof Error ? options.cause.message : String(options.cause);
    super(`${feature} needs the optional peer dependency "${packageName}": install it with \`npm install ${packageName}\` (loading it failed: ${why})`, {
      code: MISSING_DEPENDENCY_CODE,
      cause: options.cause,
    });
    this.packageName = packageName;
  }
}
registerErrorClass(MissingDependencyError);

/** A query result as node-postgres returns it. */
export interface PgQueryResult<R> {
  rows: R[];
  rowCount: number | null;
}

/** A statement as node-postgres takes it (named statements are prepared once per connection). */
export interface PgQueryConfig {
  readonly name?: string;
  readonly text: string;
  readonly values?: unknown[];
}

/** What the stores call on a pool, a pooled client or a client. */
export interface PgQueryable {
  query<R = Record<string, unknown>>(config: PgQueryConfig | string, values?: unknown[]): Promise<PgQueryResult<R>>;
}

/** A client checked out of a pool. */
export interface PgPoolClient extends PgQueryable {
  release(error?: Error | boolean): void;
}

/** A node-postgres Pool, as far as the stores use it. */
export interface PgPool extends PgQueryable {
  connect(): Promise<PgPoolClient>;
  end(): Promise<void>;
  on(event: 'error', listener: (error: Error) => void): unknown;
  readonly options?: object;
}

/** A node-postgres Client, as far as the stores use it. */
export interface PgClient extends PgQueryable {
  connect(): Promise<void>;
  end(): Promise<void>;
  on(event: 'notification', listener: (message: { channel: string; payload?: string }) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
}

/** Connection settings handed to node-postgres. */
export type PgConfig = Readonly<Record<string, unknown>>;

/** The parts of the `pg` module the stores use. */
export interface PgModule {
  readonly Pool: new (config: PgConfig) => PgPool;
  readonly Client: new (config: PgConfig) => PgClient;
}

let pgModule: Promise<PgModule> | undefined;

/** `pg`, imported on first call. Rejects with {@link MissingDependencyError} when it cannot be loaded. */
export function loadPg(feature = 'PostgresStore'): Promise<PgModule> {
  if (pgModule === undefined) {
    const loading = importOptional('pg', feature, () => import('pg')).then((module) => ((module as { default?: PgModule }).default ?? module) as PgModule);
    // A failed load is not cached: installing the package and retrying works without a restart.
    loading.catch(() => {
      if (pgModule === loading) pgModule = undefined;
    });
    pgModule = loading;
  }
  return pgModule;
}

/** A prepared better-sqlite3 statement, as far as the SQLite store uses it. */
export interface SqliteStatement {
  run(...params: unknown[]): { changes: number };
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

/** A better-sqlite3 database, as far as the SQLite store uses it. */
export interface SqliteDatabase {
  prepare(sql: string): SqliteStatement;
  exec(sql: string): unknown;
  pragma(source: string, options?: { simple?: boolean }): unknown;
  close(): unknown;
  readonly inTransaction: boolean;
}

/** better-sqlite3's default export. */
export type SqliteDatabaseConstructor = new (path: string) => SqliteDatabase;

let sqliteModule: Promise<SqliteDatabaseConstructor> | undefined;

/** `better-sqlite3`, imported on first call. Rejects with {@link MissingDependencyError} when it cannot be loaded. */
export function loadSqlite(feature = 'SqliteStore'): Promise<SqliteDatabaseConstructor> {
  if (sqliteModule === undefined) {
    const loading = importOptional('better-sqlite3', feature, () => import('better-sqlite3')).then(
      (module) => ((module as { default?: SqliteDatabaseConstructor }).default ?? module) as SqliteDatabaseConstructor,
    );
    loading.catch(() => {
      if (sqliteModule === loading) sqliteModule = undefined;
    });
    sqliteModule = loading;
  }
  return sqliteModule;
}

/**
 * Runs `load` (a dynamic import of `packageName`); any failure becomes a {@link MissingDependencyError}
 * naming the package, with the loader's error as its cause.
 * @internal Exported for tests.
 */
export async function importOptional(packageName: string, feature: string, load: () => Promise<unknown>): Promise<unknown> {
  try {
    return await load();
  } catch (error) {
    throw new MissingDependencyError(packageName, feature, { cause: error });
  }
}
