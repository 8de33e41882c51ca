/**
 * `converge storm` on real threads: the storm worker entry loads (from src/ through tsx, or the
 * built dist/workers/storm.worker.js under CONVERGE_TEST_TARGET=dist), producer and consumer
 * checksums agree, and the CLI prints its table or a coded error.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/shared/errors.js';
import { STORM_DEFAULTS, resolveStormOptions, runStorm } from '../../src/main/storm.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const dist = process.env.CONVERGE_TEST_TARGET === 'dist';
/** The command line a user runs: the built bin, or the source through tsx (what `npm start` does). */
const cli = dist ? ['dist/main/cli.js'] : ['--import', 'tsx', 'src/main/cli.ts'];

describe('runStorm', () => {
  it('carries every event from 1 and from 3 producer threads to the consumer and reports a row per scenario', async () => {
    const rows = await runStorm({ events: 30_000, producers: [1, 3], ringBytes: 256 * 1024, batch: 100 });
    expect(rows.map((r) => [r.producers, r.events])).toEqual([
      [1, 30_000],
      [3, 30_000],
    ]);
    for (const row of rows) {
      // 30,000 events in frames of 100: 300 frames, also when three producers split them 10,000 each.
      expect(row.frames).toBe(300);
      expect(row.eventsPerSecond).toBeGreaterThan(0);
      expect(row.bytesPerEvent).toBeGreaterThan(50);
      expect(row.seconds).toBeGreaterThan(0);
    }
  });

  it('validates its options, naming the field, and never mutates the caller object', () => {
    const options = { events: 10, producers: [2] };
    expect(resolveStormOptions(options)).toMatchObject({ events: 10, producers: [2], batch: STORM_DEFAULTS.batch });
    expect(options).toEqual({ events: 10, producers: [2] });
    expect(() => resolveStormOptions({ events: 0 })).toThrow(expect.objectContaining({ field: 'options.events' }));
    expect(() => resolveStormOptions({ producers: [] })).toThrow(expect.objectContaining({ field: 'options.producers' }));
    expect(() => resolveStormOptions({ ringBytes: 10 })).toThrow(ValidationError);
    expect(() => resolveStormOptions({ ringBytes: 10 })).toThrow(expect.objectContaining({ field: 'options.ringBytes' }));
  });
});

describe('converge storm (CLI)', () => {
  it('prints rows as JSON or as a table', async () => {
    const { stdout } = await run(process.execPath, [...cli, 'storm', '--events', '5000', '--producers', '1,2', '--json'], { cwd: root });
    const rows = JSON.parse(stdout) as { producers: number; events: number }[];
    expect(rows.map((r) => [r.producers, r.events])).toEqual([
      [1, 5000],
      [2, 5000],
    ]);
    const table = await run(process.execPath, [...cli, 'storm', '--events', '2000', '--producers', '1'], { cwd: root, env: { ...process.env, NO_COLOR: '1' } });
    expect(table.stdout).toContain('converge storm');
    expect(table.stdout).toMatch(/events\/s/);
  });

  it('exits 2 naming the flag on a bad value', async () => {
    await expect(run(process.execPath, [...cli, 'storm', '--events', 'lots'], { cwd: root })).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining('--events must be a whole number') });
  });
});
