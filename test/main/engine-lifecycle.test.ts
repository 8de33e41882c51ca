/**
 * Lifecycle and faults (issue 7 §1, §2): close semantics, late settles, start failures, option
 * bounds, process lifetime, loud failures. Child processes run the fixtures in test/fixtures/engine.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  createEngine,
  type EngineOptions,
  PageChange,
  type PageChangeEvent,
  Ring,
  RingProducer,
  ValidationError,
  WorkerCrashedError,
} from '../../src/main/index.js';
import { useEngines } from '../helpers/engines.js';
import { ENGINE_LIMITS } from '../../src/main/options.js';
import { WorkerLink } from '../../src/main/worker-link.js';
import { MainSlot } from '../../src/shared/protocol.js';
import { gate } from '../helpers/gate.js';

const engine = useEngines();

const root = fileURLToPath(new URL('../../', import.meta.url));
const fromDist = process.env.CONVERGE_TEST_TARGET === 'dist';

/** Collects process warnings until the returned stop() is called. */
function captureWarnings(): { warnings: Error[]; stop: () => void } {
  const warnings: Error[] = [];
  const listener = (w: Error): void => void warnings.push(w);
  process.on('warning', listener);
  return { warnings, stop: () => process.off('warning', listener) };
}

/** Waits until `check` holds, polling on macrotasks; fails at the deadline. */
async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Runs a fixture script in a child process; kills it (and fails) at the deadline. */
function runChild(name: string, timeoutMs = 40_000): Promise<{ code: number | null; signal: string | null; messages: Record<string, unknown>[]; stderr: string }> {
  const script = fileURLToPath(new URL(`../fixtures/engine/${name}`, import.meta.url));
  const args = fromDist ? [script] : ['--import', 'tsx', script];
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not exit within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const messages = stdout
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      resolve({ code, signal, messages, stderr });
    });
  });
}

const doc = (id: string): PageChangeEvent => PageChange.added(id, { dataType: 'doc', sourceId: 'test' });

describe('close', () => {
  it('ignores handlers that settle after close() gave up, warns naming them, and rejects pending calls with ClosedError', async () => {
    const child = await runChild('late-settle.mjs');
    expect(child.stderr).not.toMatch(/ClosedError|ring is closed|Unhandled/);
    expect(child.code, child.stderr).toBe(0);
    const [result] = child.messages;
    expect(result).toBeDefined();
    expect(result!['pending']).toBe('CONVERGE_CLOSED');
    const warnings = result!['warnings'] as { code: string; message: string }[];
    const closeWarning = warnings.find((w) => w.code === 'CONVERGE_CLOSE_TIMEOUT');
    expect(closeWarning?.message).toContain(result!['ok'] as string);
    expect(closeWarning?.message).toContain(result!['bad'] as string);
    expect(closeWarning?.message).toContain(result!['task'] as string);
  });

  it('rejects calls still pending when close() ends with ClosedError (CONVERGE_CLOSED), not a crash', async () => {
    const capture = captureWarnings();
    try {
      const e = await engine({ closeTimeoutMs: 100 });
      const started = gate();
      await e.subscribe({ handler: () => (started.open(), new Promise<void>(() => undefined)) });
      await e.dispatchChange(doc('hang'));
      await started.promise;
      const waiting = e.waitForQuiescence();
      await e.close();
      await expect(waiting).rejects.toMatchObject({ code: 'CONVERGE_CLOSED' });
      await expect(e.getStatus()).rejects.toMatchObject({ code: 'CONVERGE_CLOSED' });
    } finally {
      capture.stop();
    }
  });

  it('reports a trailing delivery it could not wait for', async () => {
    const capture = captureWarnings();
    try {
      const e = await engine({ closeTimeoutMs: 200, rateLimit: { minIntervalMs: 600_000, burst: 1 } });
      const started = gate();
      const sub = await e.subscribe({
        handler: (event) => (event.pageId === 'hang' ? (started.open(), new Promise<void>(() => undefined)) : undefined),
      });
      await e.dispatchChange([doc('p'), doc('p'), doc('hang')]);
      await started.promise;
      await until(async () => (await e.getStatus()).deferred === 1, 'the deferred delivery');
      await e.close();
      const warning = capture.warnings.find((w) => (w as { code?: string }).code === 'CONVERGE_CLOSE_TIMEOUT');
      expect(warning?.message).toContain(sub.id);
      expect(warning?.message).toMatch(/1 rate-limited \(trailing\) deliver/);
    } finally {
      capture.stop();
    }
  });

  it('delivers a pending trailing delivery before it closes', async () => {
    const e = await createEngine({ rateLimit: { minIntervalMs: 300, burst: 1 } });
    const seen: string[] = [];
    await e.subscribe({ handler: (event) => void seen.push(String(event.extra?.['n'])) });
    await e.dispatchChange([1, 2].map((n) => PageChange.added('p', { sourceId: 's', extra: { n } })));
    await e.close();
    expect(seen).toEqual(['1', '2']);
  });

  it('aborts source bridges and waits for them to finish', async () => {
    const e = await createEngine();
    let cleanedUp = false;
    const source = {
      static: false,
      async *watch(signal: AbortSignal): AsyncIterable<PageChangeEvent> {
        try {
          yield doc('one');
          await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
        } finally {
          // Asynchronous cleanup (closing a watcher, a socket): close() must wait for it.
          await new Promise((resolve) => setTimeout(resolve, 300));
          cleanedUp = true;
        }
      },
    };
    await e.mapSource(source);
    await e.close();
    expect(cleanedUp).toBe(true);
  });
});

describe('start and options', () => {
  it('bounds every size option at createEngine, naming the option', async () => {
    const cases: [EngineOptions, string][] = [
      [{ changeFeedSize: 2 ** 32 }, 'options.changeFeedSize'],
      [{ changeFeedSize: 2 ** 31 - 1 }, 'options.changeFeedSize'],
      [{ ringBytes: 2 ** 40 }, 'options.ringBytes'],
      [{ subscriptionCapacity: 2 ** 40 }, 'options.subscriptionCapacity'],
      [{ maxInFlight: 2 ** 40 } as EngineOptions, 'options.maxInFlight'],
      [{ episodeBudget: 2 ** 60 }, 'options.episodeBudget'],
      [{ closeTimeoutMs: 2 ** 40 }, 'options.closeTimeoutMs'],
      [{ settleMs: 2 ** 40 }, 'options.settleMs'],
      [{ rateLimit: { minIntervalMs: 2 ** 40 } }, 'options.rateLimit.minIntervalMs'],
      [{ rateLimit: { burst: 2 ** 40 } }, 'options.rateLimit.burst'],
      [{ pool: { maxThreads: 100_000 } }, 'options.pool.maxThreads'],
      [{ pool: { idleTimeout: 2 ** 40 } }, 'options.pool.idleTimeout'],
      // Piscina throws this one on the first task, from inside the pool: an uncaught RangeError.
      [{ pool: { minThreads: 3, maxThreads: 1 } }, 'options.pool.minThreads'],
    ];
    for (const [options, field] of cases) {
      const error = await createEngine(options).catch((err: unknown) => err);
      expect(error, field).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).field).toBe(field);
    }
    expect(ENGINE_LIMITS.changeFeedSize).toBeLessThan(2 ** 31 - 1);
  });

  /** A worker link on rings of its own, bypassing the engine's option checks. */
  function startLink(changeFeedSize: number): { link: WorkerLink; ring: Ring } {
    const ingest = Ring.allocate(4096);
    const ring = new Ring(ingest);
    const link = new WorkerLink(
      {
        ingest,
        dispatch: Ring.allocate(4096),
        main: new SharedArrayBuffer(MainSlot.SIZE * 4),
        episodeBudget: 10,
        rateLimit: { minIntervalMs: 1000, burst: 4, trailing: true },
        changeFeedSize,
        settleMs: 0,
        subscriptionCapacity: 10,
      },
      () => ring.nudge(),
      { onWake: () => undefined, onQuiescence: () => undefined, onSettled: () => undefined, onFailure: () => undefined },
    );
    return { link, ring };
  }

  it('a worker that fails at start rejects the pending query with the cause instead of hanging', async () => {
    // Past the engine's bound: the worker cannot allocate its change feed and dies at start.
    const { link } = startLink(2 ** 32);
    const pending = link.request();
    const error = await link.query((control) => control.status()).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(WorkerCrashedError);
    expect((error as Error).cause).toBeInstanceOf(Error);
    await expect(pending.reply).rejects.toBe(error);
    await link.waitForExit(5_000);
    link.dispose(new Error('disposed'));
  });

  it('when the worker dies, every pending request and query settles', async () => {
    const { link, ring } = startLink(16);
    await link.query((control) => control.status());
    const pending = link.request();
    // A frame the worker cannot decode: a protocol failure, fatal to the worker.
    new RingProducer(ring).write(new Uint8Array([0xc1]));
    const query = link.query((control) => control.status()).then(
      () => 'answered',
      (err: unknown) => err,
    );
    await expect(pending.reply).rejects.toBeInstanceOf(Error);
    const outcome = await query;
    if (outcome !== 'answered') expect(outcome).toBeInstanceOf(Error);
    await link.waitForExit(5_000);
    link.dispose(new Error('disposed'));
  });
});

describe('loud failures', () => {
  it("warns once per subscription when a handler fails and nothing listens to 'dispatch-error'", async () => {
    const capture = captureWarnings();
    try {
      const e = await engine();
      const a = await e.subscribe({ predicate: { pageIdPrefix: 'a' }, handler: () => Promise.reject(new Error('async boom')) });
      const b = await e.subscribe({
        predicate: { pageIdPrefix: 'b' },
        handler: () => {
          throw new TypeError('sync boom');
        },
      });
      await e.dispatchChange(['a1', 'a2', 'b1', 'b2', 'b3'].map(doc));
      const report = await e.waitForQuiescence({ timeoutMs: 20_000 });
      expect(report?.counters.dispatchesFailed).toBe(5);
      await until(() => capture.warnings.filter((w) => (w as { code?: string }).code === 'CONVERGE_DISPATCH_ERROR').length >= 2, 'the warnings');
      const mine = capture.warnings.filter((w) => (w as { code?: string }).code === 'CONVERGE_DISPATCH_ERROR');
      expect(mine).toHaveLength(2);
      expect(mine.find((w) => w.message.includes(a.id))?.message).toContain('async boom');
      expect(mine.find((w) => w.message.includes(b.id))?.message).toContain('sync boom');
      // With a listener, errors go to it and nothing more is printed.
      const heard: unknown[] = [];
      e.on('dispatch-error', (info) => heard.push(info.error));
      await e.dispatchChange(doc('a3'));
      await e.waitForQuiescence({ timeoutMs: 20_000 });
      expect(heard).toHaveLength(1);
      expect(capture.warnings.filter((w) => (w as { code?: string }).code === 'CONVERGE_DISPATCH_ERROR')).toHaveLength(2);
    } finally {
      capture.stop();
    }
  });
});

describe('process lifetime', () => {
  it("an EventBus waitFor with a deadline keeps a script alive until it answers null (not exit 13)", async () => {
    const child = await runChild('bus-wait.mjs');
    expect(child.code, child.stderr).toBe(0);
    expect(child.messages).toEqual([{ event: null }]);
  });

  it('a script that forgets close() exits by itself once the engine is idle', async () => {
    const child = await runChild('forget-close.mjs');
    expect(child.code, child.stderr).toBe(0);
    expect(child.messages[0]).toMatchObject({ settled: true });
  });
});
