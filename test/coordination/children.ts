/**
 * Spawning and talking to the worker processes of test/fixtures/coordination/claimer.mjs. Children
 * run the TypeScript source through `node --import tsx`, or the built dist/ with plain node under
 * CONVERGE_TEST_TARGET=dist. Synchronisation is by message, never by sleeping: the parent waits
 * for a child's JSON line (with a deadline) and releases racers together by writing "go".
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const script = fileURLToPath(new URL('../fixtures/coordination/claimer.mjs', import.meta.url));
const fromDist = process.env.CONVERGE_TEST_TARGET === 'dist';

/** What a child is told to do (see claimer.mjs). */
export interface ChildConfig {
  readonly store: 'sqlite' | 'postgres';
  readonly path?: string;
  readonly url?: string;
  readonly schema?: string;
  readonly agentId: string;
  readonly mode: 'drain' | 'hold' | 'unflushed';
  readonly reportFirst?: number;
  /** Drain mode: print {"progress":n} after every this many reports. */
  readonly progressEvery?: number;
  /** Work through a TaskClaimer with this batch size (batched claims and completions); absent: one claimNext/report per task. */
  readonly batch?: number;
}

/** A running child and its messages. */
export class Child {
  readonly process: ChildProcess;
  readonly #messages: Record<string, unknown>[] = [];
  readonly #waiters = new Set<() => void>();
  #stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(config: ChildConfig) {
    const args = fromDist ? [script] : ['--import', 'tsx', script];
    this.process = spawn(process.execPath, args, { cwd: root, env: { ...process.env, CONVERGE_CHILD_CONFIG: JSON.stringify(config) }, stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: this.process.stdout! }).on('line', (line) => {
      try {
        this.#messages.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        this.#stderr += `[stdout] ${line}\n`;
      }
      for (const wake of this.#waiters) wake();
    });
    this.process.stderr!.on('data', (chunk: Buffer) => {
      this.#stderr += chunk.toString();
    });
    this.exited = new Promise((resolve) => {
      this.process.on('exit', (code, signal) => {
        resolve({ code, signal });
        for (const wake of this.#waiters) wake();
      });
    });
  }

  /** Resolves with the first message that has `key`; rejects at the deadline or if the child exits first. */
  async waitFor(key: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.#messages.find((message) => key in message);
      if (found !== undefined) return found;
      if (this.process.exitCode !== null || this.process.signalCode !== null) {
        throw new Error(`child exited (${String(this.process.exitCode ?? this.process.signalCode)}) before sending "${key}"\n${this.#stderr}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no "${key}" from child within ${timeoutMs} ms\n${this.#stderr}`);
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.#waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, left);
        this.#waiters.add(done);
      });
    }
  }

  go(): void {
    this.process.stdin!.write('go\n');
  }

  get stderr(): string {
    return this.#stderr;
  }

  kill(): void {
    if (this.process.exitCode === null && this.process.signalCode === null) this.process.kill('SIGKILL');
  }
}

/** Starts children, waits until every one has opened its store, then releases them together. */
export async function startRacers(configs: readonly ChildConfig[], readyTimeoutMs = 60_000): Promise<Child[]> {
  const children = configs.map((config) => new Child(config));
  try {
    await Promise.all(children.map((child) => child.waitFor('ready', readyTimeoutMs)));
  } catch (error) {
    for (const child of children) child.kill();
    throw error;
  }
  for (const child of children) child.go();
  return children;
}
