/**
 * The PostgreSQL gate for tests. Suites that need a database use {@link describePg}: with
 * `CONVERGE_PG_URL` set they run against it; without it they are skipped with a visible warning —
 * except under `CI=true`, where a missing database must fail the run, so the suite becomes a test
 * that throws. Every suite works in its own schema ({@link uniqueSchema}) and drops it afterwards:
 * test files run in parallel and the whole suite runs twice (source and dist).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, it } from 'vitest';

/** The database URL, or undefined when PostgreSQL tests cannot run. */
export const PG_URL: string | undefined = process.env.CONVERGE_PG_URL?.trim() || undefined;

const IN_CI = process.env.CI === 'true';

/** `describe` for PostgreSQL suites; `body` receives the connection string. */
export function describePg(name: string, body: (url: string) => void): void {
  if (PG_URL !== undefined) {
    describe(name, () => body(PG_URL));
    return;
  }
  if (IN_CI) {
    describe(name, () => {
      it('has a PostgreSQL database to run against', () => {
        throw new Error('CONVERGE_PG_URL is not set, and CI=true forbids skipping the PostgreSQL tests: set CONVERGE_PG_URL=postgres://user@host:5432/db');
      });
    });
    return;
  }
  console.warn(`[converge tests] SKIPPED "${name}": set CONVERGE_PG_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run the PostgreSQL tests`);
  describe.skip(name, () => body('postgres://unset'));
}

/** A fresh schema name no other test (or run) uses. */
export function uniqueSchema(prefix = 'cv_test'): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

/** Drops `schema` and everything in it. */
export async function dropSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema.replaceAll('"', '""')}" CASCADE`);
  } finally {
    await client.end();
  }
}

/** Runs one query on a short-lived connection (test setup and inspection). */
export async function pgQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(url: string, text: string, values: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}
