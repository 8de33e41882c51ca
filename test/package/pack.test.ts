/**
 * The package as a user installs it. A copy of the package sources (no dist/) is packed with
 * `npm pack`, whose `prepack` builds dist/; the tarball is installed into a fresh application in the
 * system temp directory (outside this repository, so nothing resolves from our node_modules), from
 * the npm cache; then:
 *  - the tarball holds dist/, src/ (what the source maps point at), README.md and package.json only;
 *  - a plain install pulls in no optional peer (pg, better-sqlite3) and compiles nothing native;
 *  - the public declarations and the README's examples type-check with `skipLibCheck: false` and no
 *    @types/pg or @types/better-sqlite3;
 *  - a missing peer is an error that names the package to install;
 *  - the README's runnable examples (```ts run, see readme-examples.ts) run there as written and exit
 *    on their own.
 * It is independent of the test target, so it runs in the `src` pass only.
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_URL } from '../helpers/pg.js';
import { readmeExamples } from './readme-examples.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const DIST_PASS = process.env.CONVERGE_TEST_TARGET === 'dist';
const IN_CI = process.env.CI === 'true';
const TSX_LOADER = pathToFileURL(join(root, 'node_modules/tsx/dist/loader.mjs')).href;
const TSC = join(root, 'node_modules/typescript/bin/tsc');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string; peerDependencies: Record<string, string> };
const examples = readmeExamples(readFileSync(join(root, 'README.md'), 'utf8'));

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** The environment without what `npm test` put there for itself (npm_config_*, lifecycle names). */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.toLowerCase().startsWith('npm_')) env[key] = value;
  return { ...env, NO_COLOR: '1', ...extra };
}

/** Runs a command to completion and never rejects: the caller asserts on what happened. */
function exec(file: string, args: string[], cwd: string, options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, env: options.env ?? cleanEnv(), timeout: options.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const failure = error as (NodeJS.ErrnoException & { code?: number | string; killed?: boolean }) | null;
      resolve({ code: failure === null ? 0 : typeof failure.code === 'number' ? failure.code : 1, stdout, stderr, timedOut: failure?.killed === true });
    });
  });
}

const explain = (what: string, ran: Ran): string => `${what} ${ran.timedOut ? 'timed out' : `exited ${ran.code}`}\n--- stdout\n${ran.stdout}\n--- stderr\n${ran.stderr}`;

/** `npm` with the repository's settings but none of the parent npm run's. */
const npm = (args: string[], cwd: string, timeoutMs?: number): Promise<Ran> => exec('npm', args, cwd, timeoutMs === undefined ? {} : { timeoutMs });

/** Package directories under `modules` (one level, plus @scope/name). */
function packageDirs(modules: string): string[] {
  if (!existsSync(modules)) return [];
  const dirs: string[] = [];
  for (const name of readdirSync(modules)) {
    if (name.startsWith('.')) continue;
    if (name.startsWith('@')) for (const inner of readdirSync(join(modules, name))) dirs.push(join(modules, name, inner));
    else dirs.push(join(modules, name));
  }
  return dirs;
}

/**
 * Type-checks, in `app`, a module importing every public entry point plus the README examples, as a
 * typical Node 20 application would (@tsconfig/node20) but with `skipLibCheck: false`.
 */
function startTypecheck(app: string): Promise<Ran> {
  const dir = join(app, 'typecheck');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'consumer.ts'), [`import * as engine from '${pkg.name}';`, `import * as coordination from '${pkg.name}/coordination';`, 'export const apis = [engine, coordination];', ''].join('\n'));
  examples.forEach((example, i) => writeFileSync(join(dir, `example-${i + 1}.${example.language}`), example.code));
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { target: 'ES2022', lib: ['ES2023'], module: 'Node16', moduleResolution: 'Node16', strict: true, skipLibCheck: false, noEmit: true, allowJs: true, checkJs: false, types: ['node'] },
      include: ['typecheck'],
    }),
  );
  return exec(process.execPath, [TSC, '-p', 'tsconfig.json'], app, { timeoutMs: 170_000 });
}

describe.skipIf(DIST_PASS)('the packed package, installed into a fresh application', () => {
  let work = '';
  let app = '';
  let installed = '';
  let files: string[] = [];
  let typecheck: Promise<Ran> | undefined;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'converge-pack-'));
    // A checkout without dist/: what `npm pack` / `npm publish` starts from.
    const source = join(work, 'package');
    mkdirSync(source);
    for (const entry of ['package.json', 'package-lock.json', 'README.md', 'tsconfig.json', 'tsconfig.build.json', 'src', 'scripts']) {
      if (existsSync(join(root, entry))) cpSync(join(root, entry), join(source, entry), { recursive: true });
    }
    symlinkSync(join(root, 'node_modules'), join(source, 'node_modules'), 'dir');
    const packed = await npm(['pack', '--pack-destination', work], source, 400_000);
    if (packed.code !== 0) throw new Error(explain('npm pack', packed));
    const tarball = join(work, `${pkg.name}-${pkg.version}.tgz`);
    const listing = await exec('tar', ['-tzf', tarball], work);
    files = listing.stdout
      .split('\n')
      .filter((line) => line !== '' && !line.endsWith('/'))
      .map((line) => line.replace(/^package\//, ''));

    app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), `${JSON.stringify({ name: 'converge-consumer', private: true, type: 'module' }, null, 2)}\n`);
    // @types/node as a TypeScript consumer has it; the version we have in the cache.
    const typesNode = (JSON.parse(readFileSync(join(root, 'node_modules/@types/node/package.json'), 'utf8')) as { version: string }).version;
    const install = await npm(['install', tarball, `@types/node@${typesNode}`, '--prefer-offline', '--no-audit', '--no-fund', '--omit=dev'], app, 150_000);
    if (install.code !== 0) throw new Error(explain('npm install of the tarball', install));
    installed = join(app, 'node_modules', pkg.name);
    // The type check is the slowest step: it runs while the other tests run (before the peers are added).
    typecheck = startTypecheck(app);
  }, 600_000);

  afterAll(() => {
    if (work !== '') rmSync(work, { recursive: true, force: true });
  });

  it('ships dist/ (built by prepack), src/, the README and the architecture page, and nothing else', () => {
    expect(files).toContain('package.json');
    expect(files).toContain('README.md');
    for (const entry of ['dist/main/index.js', 'dist/main/index.d.ts', 'dist/coordination/index.js', 'dist/coordination/index.d.ts', 'dist/main/cli.js']) expect(files).toContain(entry);
    // Every worker entry is built next to its source (workers are loaded by path).
    const workers = files.filter((f) => /^src\/workers\/.*\.worker\.ts$/.test(f));
    expect(workers.length).toBeGreaterThan(0);
    for (const worker of workers) expect(files).toContain(worker.replace(/^src\//, 'dist/').replace(/\.ts$/, '.js'));
    const stray = files.filter((f) => !(f === 'package.json' || f === 'README.md' || f === 'docs/architecture.md' || f.startsWith('dist/') || f.startsWith('src/')));
    expect(stray).toEqual([]);
    expect(files.filter((f) => /(^|\/)(test|bench|node_modules)\//.test(f) || /\.(test|bench)\.[cm]?[jt]s$/.test(f) || f.endsWith('.tsbuildinfo'))).toEqual([]);
  });

  it('has a README that stands alone: no project issues, no files outside the package', () => {
    const readme = readFileSync(join(installed, 'README.md'), 'utf8');
    expect(readme.match(/\bissues? #?\d+/gi) ?? []).toEqual([]);
    expect(readme.match(/(\]\(|`)\.\.\/[^)`]*/g) ?? []).toEqual([]);
  });

  it('has source maps that point at shipped files only', () => {
    const maps = files.filter((f) => f.endsWith('.map'));
    expect(maps.length).toBeGreaterThan(10);
    const shipped = new Set(files);
    const dangling: string[] = [];
    for (const map of maps) {
      const { sources } = JSON.parse(readFileSync(join(installed, map), 'utf8')) as { sources: string[] };
      for (const source of sources) {
        const target = posix.normalize(posix.join(posix.dirname(map), source));
        if (!shipped.has(target)) dangling.push(`${map} → ${source}`);
      }
    }
    expect(dangling).toEqual([]);
  });

  it('keeps @internal declarations out of the published types', () => {
    const leaked = files.filter((f) => f.endsWith('.d.ts') && readFileSync(join(installed, f), 'utf8').includes('@internal'));
    expect(leaked).toEqual([]);
  });

  it('installs no optional peer dependency and compiles nothing native', () => {
    const modules = join(app, 'node_modules');
    for (const peer of Object.keys(pkg.peerDependencies)) expect(existsSync(join(modules, peer)), `${peer} was installed`).toBe(false);
    // node-gyp leaves build/Makefile (or config.gypi) behind in every package it compiled.
    const compiled = packageDirs(modules).filter((dir) => existsSync(join(dir, 'build', 'Makefile')) || existsSync(join(dir, 'build', 'config.gypi')));
    expect(compiled).toEqual([]);
  });

  it('reports a missing optional peer as an error that names the package to install', async () => {
    const probe = join(app, 'missing-peers.mjs');
    writeFileSync(
      probe,
      `import { PostgresStore, SqliteStore, TaskManager } from '${pkg.name}/coordination';
const out = {};
async function attempt(name, use) {
  try { await use(); out[name] = 'no error'; } catch (error) { out[name] = { code: error.code, message: String(error.message) }; }
}
await attempt('pg', async () => { const store = new PostgresStore({ connectionString: 'postgres://127.0.0.1:1/none' }); try { await new TaskManager({ store }).submit({ payload: {} }); } finally { await store.close().catch(() => {}); } });
await attempt('better-sqlite3', async () => { const store = new SqliteStore(':memory:'); try { await new TaskManager({ store }).submit({ payload: {} }); } finally { await Promise.resolve(store.close()).catch(() => {}); } });
console.log(JSON.stringify(out));
`,
    );
    const ran = await exec(process.execPath, [probe], app, { timeoutMs: 30_000 });
    expect(ran.code, explain('the probe', ran)).toBe(0);
    const out = JSON.parse(ran.stdout) as Record<string, { code: string; message: string }>;
    for (const peer of ['pg', 'better-sqlite3']) {
      expect(out[peer]).toMatchObject({ code: 'CONVERGE_MISSING_DEPENDENCY' });
      expect(out[peer]!.message).toContain(`npm install ${peer}`);
    }
  });

  it('installs a working `converge` bin', async () => {
    const bin = join(app, 'node_modules', '.bin', 'converge');
    const version = await exec(bin, ['--version'], app, { timeoutMs: 30_000 });
    expect(version, explain('converge --version', version)).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
    // The benchmarks are not in the package: one line that says where they are.
    const bench = await exec(bin, ['bench', '--quick'], app, { timeoutMs: 30_000 });
    expect(bench.code).toBe(1);
    expect(bench.stderr.trim()).toBe('converge bench: the benchmarks ship with the source repository, not the installed package; run it from a clone of the repository (npm install, then npx converge bench)');
  });

  it('finds runnable examples in the README', () => {
    expect(examples.length).toBeGreaterThan(0);
  });

  it('type-checks the public declarations and the README examples with skipLibCheck: false, without @types for the optional peers', async () => {
    const checked = await typecheck!;
    expect(checked.code, explain('tsc', checked)).toBe(0);
  }, 180_000);

  describe('README examples, run as written', () => {
    beforeAll(() => {
      // The user installs the optional peers the examples need (ours are prebuilt: no compile here).
      for (const peer of Object.keys(pkg.peerDependencies)) symlinkSync(join(root, 'node_modules', peer), join(app, 'node_modules', peer), 'dir');
    });

    for (const [i, example] of examples.entries()) {
      const needsPg = example.needs.includes('pg');
      const title = `README line ${example.line}${example.needs.length > 0 ? ` (needs ${example.needs.join(', ')})` : ''}`;
      if (needsPg && PG_URL === undefined && !IN_CI) {
        console.warn(`[converge tests] SKIPPED the README example at line ${example.line}: set CONVERGE_PG_URL to run the PostgreSQL examples`);
        it.skip(title, () => {});
        continue;
      }
      it(title, async () => {
        if (needsPg && PG_URL === undefined) throw new Error('CONVERGE_PG_URL is not set, and CI=true forbids skipping the PostgreSQL examples');
        const file = join(app, 'examples', `example-${i + 1}.${example.language === 'ts' ? 'ts' : 'mjs'}`);
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, example.code);
        const env = cleanEnv(PG_URL === undefined ? {} : { DATABASE_URL: PG_URL });
        const ran = await exec(process.execPath, ['--import', TSX_LOADER, file], app, { env, timeoutMs: 30_000 });
        // Exiting on its own within the deadline is part of the contract: nothing keeps the process alive.
        expect(ran.code, explain(`the example at README line ${example.line}`, ran)).toBe(0);
      });
    }
  });
});
