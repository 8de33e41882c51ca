/**
 * The `resourceLimits` option: V8 limits of the engine's own worker threads (the convergence worker
 * and the watch worker). By default the young generation is capped (convergence worker 16 MB, watch
 * worker 8 MB), where V8 would let each thread's grow to 48 MB under a sustained event storm
 * (bench/RESULTS.md, "File storm"); the old generation is left to V8. Observed on the real threads through `getStatus().resourceLimits`
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
  it('caps the young generation of the convergence (16 MB) and watch (8 MB) workers by default', async () => {
    expect(ENGINE_DEFAULTS.resourceLimits).toEqual({ convergence: { maxYoungGenerationSizeMb: 16 }, watch: { maxYoungGenerationSizeMb: 8 } });
    const e = await engine();
    const before = await e.getStatus();
    expect(before.resourceLimits.convergence.maxYoungGenerationSizeMb).toBe(16);
    expect(before.resourceLimits.watch).toBeNull();

    const root = mkdtempSync(join(tmpdir(), 'converge-limits-'));
    dirs.push(root);
    await e.mapSource(new LocalFsWatcher(root, { debounceMs: 20 }));
    const after = await e.getStatus();
    expect(after.resourceLimits.watch?.maxYoungGenerationSizeMb).toBe(8);
    // The old generation is V8's own (never a cap that a large tree could run out of).
    expect(after.resourceLimits.convergence.maxOldGenerationSizeMb).toBeGreaterThan(512);
    expect(after.resourceLimits.watch?.maxOldGenerationSizeMb).toBeGreaterThan(512);
  });

  it('takes the caller fields over the defaults, per thread; 0 means V8 default', async () => {
    const root = mkdtempSync(join(tmpdir(), 'converge-limits-'));
    dirs.push(root);
    const e = await engine({ resourceLimits: { convergence: { maxYoungGenerationSizeMb: 32 }, watch: { stackSizeMb: 8 } } });
    await e.mapSource(new LocalFsWatcher(root, { debounceMs: 20 }));
    const status = await e.getStatus();
    expect(status.resourceLimits.convergence.maxYoungGenerationSizeMb).toBe(32);
    expect(status.resourceLimits.watch).toMatchObject({ maxYoungGenerationSizeMb: 8, stackSizeMb: 8 });
    const v8Default = await engine({ resourceLimits: { convergence: { maxYoungGenerationSizeMb: 0 } } });
    expect((await v8Default.getStatus()).resourceLimits.convergence.maxYoungGenerationSizeMb).toBeGreaterThan(16);
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
