/**
 * How the SQL stores meet a missing or unreachable database, without needing one: a missing URL, a
 * refused connection, a server that accepts TCP and never answers (all on 127.0.0.1), and drivers
 * that are not installed (optional peer dependencies, loaded on first use).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { StoreError, ValidationError } from '../../src/shared/errors.js';
import { MissingDependencyError, PostgresStore, StoreConnectionError, TaskManager } from '../../src/coordination/index.js';
import { importOptional } from '../../src/coordination/optional-deps.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fromDist = process.env.CONVERGE_TEST_TARGET === 'dist';

describe('PostgresStore without a reachable database', () => {
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  const stores: PostgresStore[] = [];
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.close()));
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
  });

  /** A TCP server on 127.0.0.1 that accepts connections and never says a word. */
  const silentServer = async (): Promise<number> => {
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as { port: number }).port;
  };

  it('says the URL is missing when connectionString is undefined or empty', () => {
    const env: Record<string, string | undefined> = {};
    const error = (() => {
      try {
        new PostgresStore({ connectionString: env.DATABASE_URL });
        return null;
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(ValidationError);
    expect(error).toMatchObject({ field: 'options.connectionString', code: 'CONVERGE_VALIDATION' });
    expect((error as Error).message).toMatch(/URL is missing/);
    expect(() => new PostgresStore({ connectionString: '' })).toThrow(expect.objectContaining({ field: 'options.connectionString', message: expect.stringMatching(/URL is missing/) }));
    expect(() => new PostgresStore({ connectionString: 'postgres://x@127.0.0.1/db', conectTimeoutMs: 5 } as never)).toThrow(expect.objectContaining({ field: 'options.conectTimeoutMs' }));
    expect(() => new PostgresStore({ connectionString: 'postgres://x@127.0.0.1/db', queryTimeoutMs: 0 })).toThrow(expect.objectContaining({ field: 'options.queryTimeoutMs' }));
  });

  it('gives up on a server that accepts and never answers after connectTimeoutMs, as a connection failure', { timeout: 30_000 }, async () => {
    const port = await silentServer();
    const store = new PostgresStore({ connectionString: `postgres://nobody@127.0.0.1:${port}/db`, connectTimeoutMs: 200 });
    stores.push(store);
    const tm = new TaskManager({ store });
    const error = await tm.submit({ payload: 1 }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StoreConnectionError);
    expect(error).toBeInstanceOf(StoreError);
    expect(error).toMatchObject({ code: 'CONVERGE_STORE_CONNECTION' });
    expect((error as Error).message).toMatch(new RegExp(`cannot connect to 127\\.0\\.0\\.1:${port}/db: no answer within connectTimeoutMs`));
    // Every later call fails the same way instead of hanging.
    await expect(tm.claimNext('w')).rejects.toMatchObject({ code: 'CONVERGE_STORE_CONNECTION' });
  });

  it('reports a refused connection as a connection failure, not as a schema problem', { timeout: 30_000 }, async () => {
    const port = await silentServer();
    await new Promise((resolve) => servers.pop()!.close(resolve)); // nothing listens there any more
    const store = new PostgresStore({ connectionString: `postgres://nobody@127.0.0.1:${port}/db` });
    stores.push(store);
    const error = await new TaskManager({ store }).getTask('x').then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StoreConnectionError);
    expect((error as Error).message).toMatch(/cannot connect to .*ECONNREFUSED/);
    expect((error as Error).message).not.toMatch(/schema/);
    await expect(store.leaderLock('source:x')).rejects.toMatchObject({ code: expect.stringMatching(/^CONVERGE_STORE/) });
  });
});

describe('optional peer dependencies', () => {
  it('a driver that cannot be imported is a MissingDependencyError naming the package', async () => {
    const error = await importOptional('converge-no-such-driver', 'TestStore', () => import('converge-no-such-driver' as string)).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(MissingDependencyError);
    expect(error).toMatchObject({ code: 'CONVERGE_MISSING_DEPENDENCY', packageName: 'converge-no-such-driver' });
    expect((error as Error).message).toMatch(/TestStore needs the optional peer dependency "converge-no-such-driver": install it with `npm install converge-no-such-driver`/);
  });

  it('without pg and better-sqlite3 installed, the memory store works and the SQL stores name what to install', { timeout: 60_000 }, () => {
    const fixtures = fileURLToPath(new URL('../fixtures/coordination/', import.meta.url));
    const args = [...(fromDist ? [] : ['--import', 'tsx']), '--import', `${fixtures}block-drivers.mjs`, `${fixtures}without-drivers.mjs`];
    const child = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', timeout: 50_000 });
    expect(child.status, child.stderr).toBe(0);
    const out = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as Record<string, { code: string; packageName: string; message: string } | boolean>;
    expect(out.memory).toBe(true);
    expect(out.errors).toBe(true);
    expect(out.postgres).toMatchObject({ code: 'CONVERGE_MISSING_DEPENDENCY', packageName: 'pg', message: expect.stringContaining('npm install pg') });
    expect(out.sqlite).toMatchObject({ code: 'CONVERGE_MISSING_DEPENDENCY', packageName: 'better-sqlite3', message: expect.stringContaining('npm install better-sqlite3') });
  });

  it.runIf(fromDist && existsSync(`${root}dist/coordination`))('the published coordination declarations do not refer to the drivers’ types', () => {
    const dir = `${root}dist/coordination/`;
    for (const file of readdirSync(dir).filter((name) => name.endsWith('.d.ts'))) {
      const text = readFileSync(`${dir}${file}`, 'utf8');
      expect(text, file).not.toMatch(/from ['"](pg|better-sqlite3)['"]|import\(['"](pg|better-sqlite3)['"]\)/);
    }
  });
});
