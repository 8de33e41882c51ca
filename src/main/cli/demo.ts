/**
 * `converge demo` (what `npm start` runs). Placeholder until the product demo lands — a temporary git
 * repository, a derivation pipeline in the colony pool, an event storm and a verified digest. For
 * now it runs a short ingest-ring storm so that `npm start` shows the engine's data plane working.
 */
import { booleanFlag } from './args.js';
import { defineCommand } from './context.js';
import { stormCommand } from './storm.js';

export const demo = defineCommand({
  spec: {
    name: 'demo',
    summary: 'Show Converge working on embedded defaults (no services needed).',
    details: 'For now: a short event storm through the lock-free ingest ring (see `converge storm` for its options).',
    flags: {
      json: booleanFlag('print machine-readable JSON instead of tables'),
    },
  },
  async run({ flags }, context) {
    return stormCommand({ events: 1_000_000, producers: [1, 3] }, flags.json === true, context);
  },
});
