/**
 * `converge demo` (what `npm start` runs): a temporary git repository of generated files watched by
 * the engine, a derivation pipeline whose first stage runs in the colony pool, an event storm with a
 * commit pushed to a loopback remote, quiescence, and a check that the converged digest equals a
 * from-scratch recomputation. Exits 1 if it does not.
 */
import { DEMO_DEFAULTS, runDemo } from '../demo/run-demo.js';
import { createView } from '../demo/view.js';
import { booleanFlag, integer, valueFlag } from './args.js';
import { CliError, defineCommand } from './context.js';

export const demo = defineCommand({
  spec: {
    name: 'demo',
    summary: 'Converge a watched git repository through an event storm and verify the result (no services needed).',
    details:
      'Creates a temporary git repository, maps it into an engine, derives per-file summaries (in the colony pool), ' +
      'per-folder rollups and a project digest, runs a storm of writes, rewrites, renames and deletes plus a commit ' +
      'pushed to a loopback remote, waits for quiescence and checks the converged digest against a from-scratch ' +
      'recomputation. Needs the `git` binary. Exit code 1 if the digests differ.',
    flags: {
      files: valueFlag('N', 'files in the generated repository', { defaultText: DEMO_DEFAULTS.files.toLocaleString('en-US'), parse: integer(1, 200_000) }),
      storm: valueFlag('N', 'file operations in the storm', { defaultText: DEMO_DEFAULTS.storm.toLocaleString('en-US'), parse: integer(0, 1_000_000) }),
      seed: valueFlag('N', 'seed of the generated files and storm', { defaultText: String(DEMO_DEFAULTS.seed), parse: integer(0, 2 ** 31 - 1) }),
      json: booleanFlag('print one JSON document (the result) instead of the live view and table'),
    },
  },
  async run({ flags }, context) {
    const options: { files?: number; storm?: number; seed?: number; json: boolean } = { json: flags.json === true };
    if (flags.files !== undefined) options.files = flags.files;
    if (flags.storm !== undefined) options.storm = flags.storm;
    if (flags.seed !== undefined) options.seed = flags.seed;
    let result;
    try {
      result = await runDemo(options, createView({ json: options.json, stream: context.stdout, env: context.env }));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && /spawn git/.test(String((error as Error).message))) throw new CliError('the demo needs the `git` binary on PATH: install git and run it again');
      throw error;
    }
    return result.ok ? 0 : 1;
  },
});
