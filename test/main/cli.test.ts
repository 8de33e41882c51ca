/**
 * The `converge` command as a user runs it: the built bin (dist/main/cli.js) under
 * CONVERGE_TEST_TARGET=dist, the source through tsx otherwise. Exit codes, one-line errors without
 * stack traces, help on every subcommand, colour only when asked for, and the serve and worker
 * commands against real HTTP and a real PostgreSQL.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { PoolManager, PostgresStore, TaskManager } from '../../src/coordination/index.js';
import { main } from '../../src/main/cli.js';
import { createEngine, JobQueue, PageChange } from '../../src/main/index.js';
import { CLI_ARGS, startCli as start, type Started } from '../helpers/cli.js';
import { dropSchema, describePg, uniqueSchema } from '../helpers/pg.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
const scratch = mkdtempSync(join(tmpdir(), 'converge-cli-'));
const CHAIN = join(root, 'test/fixtures/jobs/chain.mjs');
const TOOLS = join(root, 'test/fixtures/jobs/tools.mjs');
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `converge …` to completion (never rejects). Output is not a terminal here. */
function converge(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [...CLI_ARGS, ...args], { cwd: root, env: { ...process.env, NO_COLOR: '', FORCE_COLOR: '', ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs the CLI's `main` in this process with captured, non-TTY output. */
async function inProcess(args: string[], env: Record<string, string> = {}): Promise<Result> {
  const sink = (): NodeJS.WritableStream & { text: string } => {
    const stream = { text: '', write: (chunk: string) => ((stream.text += chunk), true) };
    return stream as unknown as NodeJS.WritableStream & { text: string };
  };
  const stdout = sink();
  const stderr = sink();
  const code = await main(args, { stdout, stderr, env: { ...env } });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** The stderr of a refused command line: exit 2, no stack trace. */
async function refused(args: string[]): Promise<string> {
  const result = await inProcess(args);
  expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(2);
  expect(result.stderr).not.toMatch(/\n\s+at /);
  return result.stderr;
}

/** Starts a long-running `converge …`; resolves once a stdout line matches `ready`. */
describe('converge: version, help, bad input', () => {
  it('prints its version and an overview of every command', async () => {
    expect(await converge(['--version'])).toMatchObject({ code: 0, stdout: `${version}\n` });
    const help = await inProcess(['--help']);
    expect(help.code).toBe(0);
    for (const command of ['demo', 'watch', 'serve', 'worker', 'bench', 'storm']) expect(help.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
  });

  it('has --help on every subcommand', async () => {
    for (const command of ['demo', 'watch', 'serve', 'worker', 'bench', 'storm']) {
      const result = await inProcess([command, '--help']);
      expect(result.code, command).toBe(0);
      expect(result.stdout).toContain(`Usage: converge ${command}`);
      expect(result.stdout).toContain('-h, --help');
    }
  });

  it('suggests the closest command and flag, and exits 2', async () => {
    // Through the real process once: the exit code reaches the shell.
    const spawned = await converge(['serve', '--prot', '80']);
    expect(spawned).toMatchObject({ code: 2, stdout: '' });
    expect(spawned.stderr).toContain('converge serve: unknown option --prot; did you mean --port?');
    expect(await refused(['sreve'])).toContain('unknown command "sreve"; did you mean serve?');
    expect(await refused(['serve', '--prot', '80'])).toContain('converge serve: unknown option --prot; did you mean --port?');
    expect(await refused(['storm', '--evnets', '10'])).toContain('did you mean --events?');
    expect(await refused(['--verison'])).toContain('did you mean --version?');
  });

  it('validates every value, naming the flag', async () => {
    expect(await refused(['serve', '--port', 'http'])).toContain('--port must be a whole number from 0 to 65535, got "http"');
    expect(await refused(['serve', '--host', 'not a host'])).toContain('--host must be an IP address or host name');
    expect(await refused(['serve', '--secret', 'short'])).toContain('--secret must be at least 16 characters');
    expect(await refused(['storm', '--producers', '1,0'])).toContain('--producers must be a whole number from 1 to 64, got "0"');
    expect(await refused(['worker', '--module', 'x.js'])).toContain('--module: no such file');
    expect(await refused(['worker', '--pg', 'mysql://db/x', '--jobs'])).toContain('--pg must start with postgres:// or postgresql://');
    expect(await refused(['worker', '--jobs'])).toContain('--pg is required');
    expect(await refused(['worker', '--pg', 'postgres://h/db'])).toContain('give --module FILE (a task function), --jobs or --tasks');
    expect(await refused(['worker', '--pg', 'postgres://h/db', '--jobs', '--tasks'])).toContain('give one of --module, --jobs or --tasks');
    expect(await refused(['worker', '--pg', 'postgres://h/db', '--jobs', '--pool', 'p'])).toContain('--pool goes with --module');
    expect(await refused(['worker', '--pg', 'postgres://h/db', '--jobs', '--concurrency', '0'])).toContain('--concurrency must be a whole number from 1 to 1024');
    expect(await refused(['watch', '.', '--where', 'dataTyp=file'])).toContain('unknown key "dataTyp"; did you mean dataType?');
    expect(await refused(['watch'])).toContain('missing <dir>');
  });

  it('says in one line what to do about a missing directory or an unreachable database', async () => {
    const missing = await converge(['watch', join(scratch, 'nope')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim().split('\n')).toEqual([`converge watch: no such directory: ${join(scratch, 'nope')} (give the path of a directory to watch)`]);
    const task = join(scratch, 'task.mjs');
    writeFileSync(task, 'export default (payload) => payload;\n');
    const unreachable = await converge(['worker', '--pg', 'postgres://postgres@127.0.0.1:1/none', '--module', task]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr.trim().split('\n')).toEqual(['converge worker: nothing listens at 127.0.0.1:1/none: start PostgreSQL there, or pass the right URL with --pg']);
  });

  it('colours only a terminal that wants it: NO_COLOR and non-TTY output are plain, FORCE_COLOR forces', async () => {
    const plain = await inProcess(['storm', '--events', '2000', '--producers', '1']);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(/│ producers │\s+events │/);
    expect(plain.stdout).not.toContain('\u001b[');
    const forced = await inProcess(['storm', '--events', '2000', '--producers', '1'], { FORCE_COLOR: '1' });
    expect(forced.stdout).toContain('\u001b[1m');
    const vetoed = await inProcess(['storm', '--events', '2000', '--producers', '1'], { FORCE_COLOR: '1', NO_COLOR: '1' });
    expect(vetoed.stdout).not.toContain('\u001b[');
  });
});

/**
 * Writes `<stem>-<n>.txt` into `dir` until the watcher prints a line matching `pattern(n)`: the
 * watcher may still be starting when its banner appears, and files written before it scanned the
 * tree are part of its initial state, not changes.
 */
async function changeSeen(watcher: Started, dir: string, stem: string, pattern: (name: string) => RegExp): Promise<RegExpMatchArray> {
  for (let attempt = 0; ; attempt++) {
    const name = `${stem}-${attempt}.txt`;
    writeFileSync(join(dir, name), String(attempt));
    try {
      return await watcher.until(pattern(name), 8_000);
    } catch (error) {
      if (attempt >= 4) throw error;
    }
  }
}

describe('converge watch', () => {
  it('prints each change of the directory and a line per settled episode; --where narrows; stops on SIGINT', async () => {
    const dir = mkdtempSync(join(scratch, 'watched-'));
    const watcher = await start(['watch', dir, '--where', 'pageIdPrefix=file:keep'], /watching /);
    try {
      writeFileSync(join(dir, 'skip.txt'), 'not printed');
      await changeSeen(watcher, dir, 'keep', (name) => new RegExp(`page_added\\s+file:${name.replace('.', '\\.')}`));
      await watcher.until(/settled ep_\w+ in \d+ ms: \d+ events, \d+ shown/);
      expect(watcher.output()).not.toContain('skip');
    } finally {
      watcher.child.kill('SIGINT');
    }
    expect(await watcher.exited).toBe(0);
  });

  it('watches a git working tree with --git without writing to the repository', async () => {
    const dir = mkdtempSync(join(scratch, 'repo-'));
    execFileSync('git', ['init', '-q', dir]);
    const watcher = await start(['watch', dir, '--git'], /watching .* \(git\)/);
    try {
      await changeSeen(watcher, dir, 'tracked', (name) => new RegExp(`page_added\\s+file:${name.replace('.', '\\.')}`));
      await watcher.until(/settled ep_\w+/);
    } finally {
      watcher.child.kill('SIGINT');
    }
    expect(await watcher.exited).toBe(0);
    // No checkpoint commit, no tag: watching only reads.
    expect(execFileSync('git', ['-C', dir, 'tag'], { encoding: 'utf8' })).toBe('');
    expect(() => execFileSync('git', ['-C', dir, 'rev-parse', '--verify', '-q', 'HEAD'], { stdio: 'ignore' })).toThrow();
    const notRepo = await inProcess(['watch', scratch, '--git']);
    expect(notRepo.code).toBe(2);
    expect(notRepo.stderr.trim()).toBe(`converge watch: not a git repository: ${scratch} (watch it without --git, or run git init there)`);
  });

  it('prints one JSON object per line with --json', async () => {
    const dir = mkdtempSync(join(scratch, 'watched-'));
    const watcher = await start(['watch', dir, '--json'], /^\{"type":"watching".*$/m);
    expect(JSON.parse(watcher.match[0])).toEqual({ type: 'watching', root: dir, git: false, predicate: {} });
    try {
      const change = await changeSeen(watcher, dir, 'n', (name) => new RegExp(`^\\{"type":"change".*"file:${name.replace('.', '\\.')}".*$`, 'm'));
      expect(JSON.parse(change[0])).toMatchObject({ type: 'change', kind: 'page_added', pageId: expect.stringMatching(/^file:n-\d\.txt$/) });
      const episode = await watcher.until(/^\{"type":"episode".*$/m);
      expect(JSON.parse(episode[0])).toMatchObject({ type: 'episode', counters: { dispatchesEmitted: expect.any(Number) } });
    } finally {
      watcher.child.kill('SIGINT');
    }
    expect(await watcher.exited).toBe(0);
  });
});

describe('converge serve', () => {
  const secret = 'a-test-secret-of-32-characters!!';

  it('serves /status, /metrics, the dashboard and a live /feed; takes signed events only; stops on SIGTERM', async () => {
    const server = await start(['serve', '--port', '0', '--secret', secret], /listening on (http:\/\/127\.0\.0\.1:\d+)/);
    const base = server.match[1]!;
    try {
      const status = (await (await fetch(`${base}/status`)).json()) as { version: string; acceptsEvents: boolean; status: { state: string; counters: { eventsReceived: number } } };
      expect(status).toMatchObject({ version, acceptsEvents: true, status: { counters: { eventsReceived: 0 } } });
      const page = await fetch(base);
      expect(page.headers.get('content-type')).toContain('text/html');
      expect(await page.text()).toContain('<title>Converge</title>');
      expect((await fetch(`${base}/nowhere`)).status).toBe(404);

      // The feed: wait for its hello, then push a signed event and see it arrive.
      const feed = await openFeed(`${base}/feed`);
      try {
        await feed.waitFor('hello', (frames) => frames.find((f) => f.event === 'hello'));
        const body = JSON.stringify([{ kind: 'page_added', pageId: 'doc:1', dataType: 'note' }]);
        const unsigned = await fetch(`${base}/events`, { method: 'POST', body });
        expect(unsigned.status).toBe(401);
        const wrong = await fetch(`${base}/events`, { method: 'POST', body, headers: { 'x-converge-signature': `sha256=${'0'.repeat(64)}` } });
        expect(wrong.status).toBe(401);
        const signature = `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
        const accepted = await fetch(`${base}/events`, { method: 'POST', body, headers: { 'x-converge-signature': signature } });
        expect(accepted.status).toBe(202);
        const change = await feed.waitFor('doc:1', (frames) => frames.find((f) => f.event === 'change' && f.data.pageId === 'doc:1')?.data);
        expect(change).toMatchObject({ pageId: 'doc:1', kind: 'page_added' });
        // A git push webhook, signed the GitHub way, through the WebhookReceiver behind the server.
        const push = JSON.stringify({
          ref: 'refs/heads/main',
          after: 'c0ffee0000000000000000000000000000000000',
          repository: { clone_url: 'https://example.com/app.git', html_url: 'https://example.com/app' },
          commits: [{ added: ['docs/new.md'], modified: [], removed: [] }],
        });
        const hubSignature = `sha256=${createHmac('sha256', secret).update(push).digest('hex')}`;
        const badHook = await fetch(`${base}/webhooks/github`, { method: 'POST', body: push, headers: { 'x-github-event': 'push', 'x-hub-signature-256': `sha256=${'0'.repeat(64)}` } });
        expect(badHook.status).toBe(401);
        const hook = await fetch(`${base}/webhooks/github`, { method: 'POST', body: push, headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': 'd-1', 'x-hub-signature-256': hubSignature } });
        expect(hook.status).toBe(202);
        expect(await hook.json()).toEqual({ events: 1 });
        expect(await feed.waitFor('the pushed file', (frames) => frames.find((f) => f.event === 'change' && f.data.pageId === 'file:docs/new.md')?.data)).toMatchObject({ kind: 'page_added' });
        // A burst: every entry reaches the feed as a change, or is counted in a gap when more came in
        // between two reads than one read returns (1,000) — none is dropped without a word.
        const burstSize = 20_000;
        const burst = JSON.stringify(Array.from({ length: burstSize }, (_, i) => ({ kind: 'page_added', pageId: `burst:${i}`, dataType: 'note' })));
        const flood = await fetch(`${base}/events`, { method: 'POST', body: burst, headers: { 'x-converge-signature': `sha256=${createHmac('sha256', secret).update(burst).digest('hex')}` } });
        expect(flood.status).toBe(202);
        const accounted = (frames: Feed['frames']): { seen: number; missed: number } => ({
          seen: frames.filter((f) => f.event === 'change' && String(f.data.pageId).startsWith('burst:')).length,
          missed: frames.filter((f) => f.event === 'gap').reduce((sum, f) => sum + (f.data.missed as number), 0),
        });
        const { seen, missed } = await feed.waitFor('the whole burst', (frames) => {
          const counts = accounted(frames);
          return counts.seen + counts.missed >= burstSize ? counts : undefined;
        }, 60_000);
        expect(seen + missed).toBe(burstSize);
        for (const gap of feed.frames.filter((f) => f.event === 'gap')) expect(gap.data.missed).toBe(gap.data.to - gap.data.from + 1);
        const invalid = JSON.stringify({ kind: 'nope', pageId: 'x' });
        const refusedEvent = await fetch(`${base}/events`, { method: 'POST', body: invalid, headers: { 'x-converge-signature': `sha256=${createHmac('sha256', secret).update(invalid).digest('hex')}` } });
        expect(refusedEvent.status).toBe(400);
        expect(await refusedEvent.json()).toMatchObject({ code: 'CONVERGE_VALIDATION' });
      } finally {
        feed.close();
      }
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/^converge_events_received_total 20002$/m);
      expect(metrics).toContain('# TYPE converge_subscriptions gauge');
      expect(metrics).toContain('converge_process_cpu_user_seconds_total');
    expect(metrics).not.toMatch(/^process_/m);
    } finally {
      server.child.kill('SIGTERM');
    }
    expect(await server.exited).toBe(0);
    expect(server.output()).toContain('converge serve: stopped');
  });

  it('answers an oversize body with 413, on /events and on the webhooks behind it (not a 502 or a reset)', async () => {
    const server = await start(['serve', '--port', '0', '--secret', secret], /listening on (http:\/\/127\.0\.0\.1:\d+)/);
    const base = server.match[1]!;
    try {
      // Over the WebhookReceiver's 1 MiB: its early 413 used to race the proxied upload (502 / EPIPE).
      const hook = await fetch(`${base}/webhooks/github`, { method: 'POST', body: Buffer.alloc(2 * 1024 * 1024, 120), headers: { 'x-github-event': 'push', 'x-hub-signature-256': `sha256=${'0'.repeat(64)}` } });
      expect(hook.status).toBe(413);
      // Over /events' 8 MiB: the connection used to be destroyed before the answer.
      const events = await fetch(`${base}/events`, { method: 'POST', body: Buffer.alloc(9 * 1024 * 1024, 120), headers: { 'x-converge-signature': `sha256=${'0'.repeat(64)}` } });
      expect(events.status).toBe(413);
      // The server still answers afterwards.
      expect((await fetch(`${base}/status`)).status).toBe(200);
    } finally {
      server.child.kill('SIGTERM');
    }
    expect(await server.exited).toBe(0);
  });

  it('refuses POST without --secret, and a port in use in one line', async () => {
    const server = await start(['serve', '--port', '0'], /listening on (http:\/\/127\.0\.0\.1:(\d+))/, { CONVERGE_SECRET: '' });
    try {
      const response = await fetch(`${server.match[1]}/events`, { method: 'POST', body: '[]' });
      expect(response.status).toBe(403);
      expect((await fetch(`${server.match[1]}/webhooks/github`, { method: 'POST', body: '{}' })).status).toBe(403);
      const busy = await converge(['serve', '--port', server.match[2]!]);
      expect(busy.code).toBe(1);
      expect(busy.stderr.trim().split('\n')).toEqual([`converge serve: 127.0.0.1:${server.match[2]} is already in use: pick another port with --port (or --port 0 for any free one)`]);
    } finally {
      server.child.kill('SIGTERM');
    }
    expect(await server.exited).toBe(0);
  });
});

/** A server-sent-events reader: every frame received, and a way to wait for a condition on them. */
interface Feed {
  readonly frames: readonly { event: string; data: any }[];
  /** Resolves with `find(frames)` once it is not undefined (re-checked on every chunk; deadline `timeoutMs`). */
  waitFor<T>(what: string, find: (frames: readonly { event: string; data: any }[]) => T | undefined, timeoutMs?: number): Promise<T>;
  close(): void;
}

function openFeed(url: string): Promise<Feed> {
  return new Promise((resolve, reject) => {
    const request = get(url, (response) => {
      const frames: { event: string; data: any }[] = [];
      const checks = new Set<() => void>();
      let buffer = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(frame)?.[1];
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          if (event !== undefined && data !== undefined) frames.push({ event, data: JSON.parse(data) });
        }
        for (const check of checks) check();
      });
      resolve({
        frames,
        waitFor: (what, find, timeoutMs = 20_000) =>
          new Promise((done, fail) => {
            const timer = setTimeout(() => {
              checks.delete(check);
              fail(new Error(`no ${what} on the feed within ${timeoutMs} ms (${frames.length} frames)`));
            }, timeoutMs);
            function check(): void {
              const found = find(frames);
              if (found === undefined) return;
              clearTimeout(timer);
              checks.delete(check);
              done(found);
            }
            checks.add(check);
            check();
          }),
        close: () => request.destroy(),
      });
    });
    request.on('error', reject);
  });
}

describePg('converge worker', (url) => {
  const schema = uniqueSchema('cv_cli');
  afterAll(() => dropSchema(url, schema));

  it('claims a task from PostgreSQL, runs the module on it, reports the result, and stops on SIGTERM', async () => {
    const module = join(scratch, 'double.mjs');
    writeFileSync(module, 'export async function double(payload) { return { doubled: payload.n * 2 }; }\n');
    const store = new PostgresStore({ connectionString: url, schema });
    const tasks = new TaskManager({ store });
    const pools = new PoolManager({ store });
    try {
      const missing = await converge(['worker', '--pg', url, '--schema', schema, '--pool', 'no-pool', '--module', module, '--export', 'double']);
      expect(missing.code).toBe(1);
      expect(missing.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^converge worker: there is no pool no-pool in schema cv_cli_\w+ at \S+: create it first/)]);
      await pools.createPool({ id: 'cli-pool' });
      const { id } = await tasks.submit({ payload: { n: 21 }, poolId: 'cli-pool' });
      const worker = await start(['worker', '--pg', url, '--schema', schema, '--pool', 'cli-pool', '--module', module, '--export', 'double', '--agent', 'cli-worker'], /claiming from pool cli-pool/);
      try {
        const done = await tasks.waitUntilDone(id, { timeoutMs: 30_000 });
        expect(done).toMatchObject({ state: 'completed', result: { doubled: 42 }, assignedTo: 'cli-worker' });
      } finally {
        worker.child.kill('SIGTERM');
      }
      expect(await worker.exited).toBe(0);
      expect(worker.output()).toContain(`done   ${id}`);
      // It left the pool on the way out.
      expect((await pools.getPool('cli-pool'))?.members).toEqual([]);
    } finally {
      await pools.close();
      await tasks.close();
      await store.close();
    }
  });

  it("runs engines' task-subscription dispatches with --tasks; a --module worker leaves them (and jobs) alone", async () => {
    const schemaTasks = uniqueSchema('cv_cli_tasks');
    const store = new PostgresStore({ connectionString: url, schema: schemaTasks, max: 4 });
    const module = join(scratch, 'never.mjs');
    writeFileSync(module, 'export default async function never() { throw new Error("a module worker ran a dispatch"); }\n');
    const engine = await createEngine({ store, pool: { runLocally: false, claimTtlMs: 30_000 } });
    const bystander = await start(['worker', '--pg', url, '--schema', schemaTasks, '--module', module, '--agent', 'bystander'], /claiming at/);
    const worker = await start(['worker', '--pg', url, '--schema', schemaTasks, '--tasks', '--agent', 'cli-tasks'], /running task-subscription dispatches/);
    try {
      const seen: string[] = [];
      await engine.subscribe({ predicate: { dataType: 'chain' }, task: { filename: new URL('../fixtures/colony/tasks.mjs', import.meta.url) } });
      await engine.subscribe({ predicate: { dataType: 'chain' }, handler: (event) => void seen.push(event.pageId) });
      await engine.dispatchChange(PageChange.added('c0', { dataType: 'chain', sourceId: 'test', extra: { level: 0, depth: 2 } }));
      expect(await engine.waitForQuiescence({ timeoutMs: 60_000 })).not.toBeNull();
      expect(seen.sort()).toEqual(['c0', 'c0:1', 'c0:2']);
    } finally {
      worker.child.kill('SIGTERM');
      bystander.child.kill('SIGTERM');
      await engine.close();
      await store.close();
      await dropSchema(url, schemaTasks);
    }
    expect(await worker.exited).toBe(0);
    expect(worker.output()).toMatch(/stopped \(3 completed, 0 failed\)/);
    expect(await bystander.exited).toBe(0);
    expect(bystander.output()).not.toMatch(/done|failed/);
  });

  it('runs ConvergeJobs with --jobs: a job whose worker is killed with SIGKILL is completed by another', async () => {
    const schemaJobs = uniqueSchema('cv_cli_jobs');
    const holdFile = join(scratch, `hold-${process.pid}`);
    const store = new PostgresStore({ connectionString: url, schema: schemaJobs });
    // A short claim lifetime: the dead worker's job runs again about a second after the kill.
    const queue = new JobQueue({ store, claimTtlMs: 1_000 });
    const workerArgs = (agent: string): string[] => ['worker', '--pg', url, '--schema', schemaJobs, '--jobs', '--agent', agent];
    try {
      const id = await queue.submitJob({
        agents: [
          { name: 'first', module: CHAIN, export: 'first' },
          { name: 'second', module: CHAIN, export: 'second' },
          { name: 'third', module: CHAIN, export: 'third' },
          { name: 'held', module: CHAIN, export: 'held', optional: true },
        ],
        tools: { hold: { module: TOOLS, export: 'hold', timeoutMs: 600_000, retries: 0 } },
        context: { n: 5, holdFile },
      });
      // The first worker takes the job and blocks inside it (the hold tool announces itself), then dies.
      const doomed = await start(workerArgs('doomed'), /running jobs/);
      await doomed.until(new RegExp(`started ${id} \\(attempt 1\\)`));
      await doomed.until(/"holding"/);
      doomed.child.kill('SIGKILL');
      expect(await doomed.exited).toBe(null);
      // The second worker gets it once the claim expires, runs it from the start, and completes it.
      const survivor = await start(workerArgs('survivor'), /running jobs/);
      try {
        await survivor.until(new RegExp(`started ${id} \\(attempt 2\\)`));
        await survivor.until(new RegExp(`done   ${id}: converged after \\d+ rounds`));
        const job = await queue.getJob(id);
        expect(job).toMatchObject({ state: 'completed', attempts: 2, runtime: 'survivor' });
        expect(job!.result!.context).toMatchObject({ n: 5, a: 5, b: 6, c: 12, held: 'passed' });
      } finally {
        survivor.child.kill('SIGTERM');
      }
      expect(await survivor.exited).toBe(0);
      expect(survivor.output()).toMatch(/stopped \(1 completed, 0 failed, 0 lost\)/);
    } finally {
      await queue.close();
      await store.close();
      await dropSchema(url, schemaJobs);
    }
  });
});

describe('converge bench', () => {
  it('runs bench/run.ts (through tsx also from dist) and fails in one line when no bench matches', async () => {
    const result = await converge(['bench', '--quick', 'no-such-bench']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('no bench/*.bench.ts matches no-such-bench');
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('closes with one table of every ratio against its baseline, and records runs in markdown', async () => {
    const { ratioTable, resultsSection } = await import('../../bench/run.js');
    const ratios = [
      { bench: 'ring', measure: 'ring 1 → 1', value: 2_000_000, unit: 'events/s', baseline: 'postMessage', baselineValue: 200_000, goal: 8 },
      { bench: 'ingest', measure: 'engine', value: 10_000, unit: 'events/s', baseline: 'emitter', baselineValue: 20_000 },
    ];
    const table = ratioTable(ratios, { enabled: false, bold: String, dim: String, red: String, green: String, yellow: String, cyan: String });
    const rows = table.split('\n').filter((line) => line.startsWith('│')).map((line) => line.split('│').slice(1, -1).map((cell) => cell.trim()));
    expect(rows).toEqual([
      ['bench', 'measure', 'figure', 'baseline', 'baseline figure', 'ratio', 'goal', 'met'],
      ['ring', 'ring 1 → 1', '2.00 M events/s', 'postMessage', '200.0 k events/s', '10×', '≥ 8.00×', 'yes'],
      ['ingest', 'engine', '10.0 k events/s', 'emitter', '20.0 k events/s', '0.50×', '', ''],
    ]);
    const section = resultsSection(ratios, { quick: true, seconds: 12, failures: [], load: [1, 2, 3] });
    expect(section).toMatch(/^## Run of \d{4}-\d\d-\d\d \d\d:\d\d UTC \(`converge bench --quick`\)$/m);
    expect(section).toContain(`Node ${process.versions.node}`);
    expect(section).toContain('| ring | ring 1 → 1 | 2.00 M events/s | postMessage | 200.0 k events/s | 10× | ≥ 8.00× | yes |');
  });
});
