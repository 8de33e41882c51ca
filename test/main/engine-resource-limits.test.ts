/**
 * The `resourceLimits` option: V8 limits of the engine's own worker threads (the convergence worker
 * and the watch worker). By default the convergence worker's young generation is capped at 16 MB,
 * where V8 would let it grow to 48 MB under a sustained event storm, and its old generation is kept
 * below 2 GB (2000 MB), where V8 lets a heap grow to 2x rather than 4x its live size; the watch worker
 * keeps V8's defaults (bench/RESULTS.md, "File storm"). Observed on the real threads through `getStatus().resourceLimits`
 * (Node's `worker.resourceLimits`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalFsWatcher, PageChange, ValidationError } from '../../src/main/index.js';
import { ENGINE_DEFAULTS } from '../../src/main/options.js';
import { useEngines } from '../helpers/engines.js';

const engine = useEngines();
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('resourceLimits of the engine threads', () => {
  it("caps the convergence worker's young and old generations by default; the watch worker keeps V8's", async () => {
    expect(ENGINE_DEFAULTS.resourceLimits).toEqual({ convergence: { maxYoungGenerationSizeMb: 16, maxOldGenerationSizeMb: 2000 }, watch: {} });
    const e = await engine();
    const before = await e.getStatus();
    expect(before.resourceLimits.convergence.maxYoungGenerationSizeMb).toBe(16);
    expect(before.resourceLimits.watch).toBeNull();

    const root = mkdtempSync(join(tmpdir(), 'converge-limits-'));
    dirs.push(root);
    await e.mapSource(new LocalFsWatcher(root, { debounceMs: 20 }));
    const after = await e.getStatus();
    expect(after.resourceLimits.convergence).toMatchObject({ maxYoungGenerationSizeMb: 16, maxOldGenerationSizeMb: 2000 });
    // V8's defaults (48 MB young, a 4 GB old generation on this kind of machine).
    expect(after.resourceLimits.watch?.maxYoungGenerationSizeMb).toBeGreaterThan(16);
    expect(after.resourceLimits.watch?.maxOldGenerationSizeMb).toBeGreaterThan(2000);
  });

  it('takes the caller fields over the defaults, per thread; 0 means V8 default', async () => {
    const root = mkdtempSync(join(tmpdir(), 'converge-limits-'));
    dirs.push(root);
    const e = await engine({ resourceLimits: { convergence: { maxYoungGenerationSizeMb: 32 }, watch: { maxYoungGenerationSizeMb: 8, stackSizeMb: 8 } } });
    await e.mapSource(new LocalFsWatcher(root, { debounceMs: 20 }));
    const status = await e.getStatus();
    expect(status.resourceLimits.convergence).toMatchObject({ maxYoungGenerationSizeMb: 32, maxOldGenerationSizeMb: 2000 });
    expect(status.resourceLimits.watch).toMatchObject({ maxYoungGenerationSizeMb: 8, stackSizeMb: 8 });
    const v8Default = await engine({ resourceLimits: { convergence: { maxYoungGenerationSizeMb: 0, maxOldGenerationSizeMb: 0 } } });
    const limits = (await v8Default.getStatus()).resourceLimits.convergence;
    expect(limits.maxYoungGenerationSizeMb).toBeGreaterThan(16);
    expect(limits.maxOldGenerationSizeMb).toBeGreaterThan(2000);
  });

  it('refuses a negative or unknown limit with a ValidationError naming it', async () => {
    await expect(engine({ resourceLimits: { watch: { maxYoungGenerationSizeMb: -1 } } })).rejects.toThrow(ValidationError);
    await expect(engine({ resourceLimits: { watch: { maxYoungGenerationSizeMb: -1 } } })).rejects.toThrow(/resourceLimits\.watch\.maxYoungGenerationSizeMb/);
    await expect(engine({ resourceLimits: { maxYoungGenerationSizeMb: 4 } as never })).rejects.toThrow(/resourceLimits/);
  });

  it('an engine under the default limits still delivers a burst of events', async () => {
    const e = await engine({ episodeBudget: 1_000_000 });
    let seen = 0;
    await e.subscribe({ predicate: { sourcePrefix: 'limits:' }, handler: () => void seen++ });
    const events = Array.from({ length: 20_000 }, (_, i) => PageChange.added(`p${i}`, { sourceId: 'limits:test', extra: { n: i } }));
    for (let i = 0; i < events.length; i += 1_000) await e.dispatchChange(events.slice(i, i + 1_000));
    await e.waitForQuiescence();
    expect(seen).toBe(20_000);
  });
});
