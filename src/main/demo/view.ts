/**
 * What the demo shows a person: phases, a live progress bar with the engine's counters on a
 * terminal (plain lines otherwise, or with NO_COLOR), and a final table — or, with `--json`, nothing
 * but one JSON document at the end.
 */
import cliProgress from 'cli-progress';
import Table from 'cli-table3';
import type { DemoResult } from './run-demo.js';

/** The demo's output surface (a test can pass its own). */
export interface DemoView {
  phase(text: string): void;
  startProgress(total: number): void;
  progress(done: number): void;
  stopProgress(): void;
  counters(counters: Record<string, number>, state: string): void;
  result(result: DemoResult): void;
}

const number = (n: number): string => Math.round(n).toLocaleString('en-US');

/** Plain lines or a live view, depending on the terminal; JSON only with `json`. */
export function createView({
  json,
  stream = process.stdout,
  env = process.env,
}: {
  json: boolean;
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  env?: NodeJS.ProcessEnv;
}): DemoView {
  if (json) return jsonView(stream);
  // A terminal gets the live view; NO_COLOR (set and non-empty, per no-color.org) only takes the colour away.
  const color = env.NO_COLOR === undefined || env.NO_COLOR === '' ? env.FORCE_COLOR !== '0' : false;
  return stream.isTTY === true ? liveView(stream as NodeJS.WriteStream, color) : plainView(stream);
}

function jsonView(stream: NodeJS.WritableStream): DemoView {
  return {
    phase: () => undefined,
    startProgress: () => undefined,
    progress: () => undefined,
    stopProgress: () => undefined,
    counters: () => undefined,
    result: (result) => void stream.write(`${JSON.stringify(result, null, 2)}\n`),
  };
}

function plainView(stream: NodeJS.WritableStream): DemoView {
  let total = 0;
  let lastTenth = -1;
  return {
    phase: (text) => void stream.write(`• ${text}\n`),
    startProgress: (n) => {
      total = n;
      lastTenth = -1;
    },
    progress: (done) => {
      const tenth = Math.floor((done / Math.max(1, total)) * 10);
      if (tenth !== lastTenth) {
        lastTenth = tenth;
        stream.write(`  storm ${number(done)}/${number(total)}\n`);
      }
    },
    stopProgress: () => undefined,
    counters: () => undefined,
    result: (result) => void stream.write(renderResult(result, false)),
  };
}

function liveView(stream: NodeJS.WriteStream, color: boolean): DemoView {
  let bar: cliProgress.SingleBar | undefined;
  let payload = { events: '0', dispatches: '0', state: 'idle' };
  return {
    phase: (text) => {
      bar?.stop();
      bar = undefined;
      stream.write(color ? `\x1b[1m•\x1b[0m ${text}\n` : `• ${text}\n`);
    },
    startProgress: (total) => {
      bar = new cliProgress.SingleBar(
        {
          stream,
          format: '  storm {bar} {percentage}% | {value}/{total} ops | events {events} | dispatches {dispatches} | {state}',
          hideCursor: true,
          clearOnComplete: false,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total, 0, payload);
    },
    progress: (done) => bar?.update(done, payload),
    stopProgress: () => {
      bar?.stop();
      bar = undefined;
    },
    counters: (counters, state) => {
      payload = { events: number(counters.eventsReceived ?? 0), dispatches: number(counters.dispatchesEmitted ?? 0), state };
      bar?.update(payload);
    },
    result: (result) => void stream.write(renderResult(result, color)),
  };
}

/** The final table and verdict. */
export function renderResult(result: DemoResult, color: boolean): string {
  const table = new Table({
    head: ['measure', 'value'],
    style: color ? { head: ['cyan'], compact: true } : { head: [], border: [], compact: true },
    colAligns: ['left', 'right'],
  });
  const e = result.episode;
  table.push(
    ['files (final)', number(result.files)],
    ['folders', number(result.folders)],
    ['storm operations', number(result.storm.writes + result.storm.rewrites + result.storm.identical + result.storm.renames + result.storm.deletes)],
    ['events', number(e.events)],
    ['dispatches', number(e.dispatches)],
    ['damped', number(e.damped)],
    ['rate-limited', number(e.rateLimited)],
    ['failed', number(e.failed)],
    ['episodes', number(e.episodes)],
    ['episode time (summed)', `${(e.durationMs / 1000).toFixed(2)} s`],
    ['events/s (storm phase)', number(e.eventsPerSecond)],
    ['dashboard updates (damped 1 %)', number(result.dashboard.updates)],
    ['remote commit events', number(result.remoteEvents)],
    ['total time', `${(result.totalMs / 1000).toFixed(1)} s`],
  );
  const ok = color ? '\x1b[32m✔\x1b[0m' : 'OK:';
  const bad = color ? '\x1b[31m✘\x1b[0m' : 'FAILED:';
  const verdict = result.ok
    ? `${ok} converged digest ${result.digest.converged.slice(0, 16)}… equals the from-scratch recomputation`
    : `${bad} converged digest ${result.digest.converged.slice(0, 16)}… differs from the recomputation ${result.digest.recomputed.slice(0, 16)}…`;
  return `${table.toString()}\n${verdict}\n`;
}
