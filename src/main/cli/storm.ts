/**
 * `converge storm`: an event storm through the lock-free ingest ring on real threads (producer
 * threads → SharedArrayBuffer ring → consumer thread), printed as a throughput table.
 */
import { cpus } from 'node:os';
import { ringCapacityFor } from '../../shared/ring.js';
import { STORM_DEFAULTS, resolveStormOptions, runStorm, type StormOptions, type StormRow } from '../storm.js';
import { booleanFlag, integer, list, valueFlag } from './args.js';
import { type CliContext, defineCommand } from './context.js';
import { formatNumber, renderTable } from './output.js';

const bytes = (n: number): string => (n >= 1024 * 1024 ? `${n / 1024 / 1024} MiB` : n >= 1024 ? `${n / 1024} KiB` : `${n} bytes`);
const rate = (n: number): string => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : `${(n / 1e3).toFixed(0)} k`);

/** Prints storm rows as the CLI's table. */
export function printStormTable(rows: readonly StormRow[], context: CliContext): void {
  context.out(
    renderTable(
      rows,
      [
        { header: 'producers', value: (row) => row.producers },
        { header: 'events', value: (row) => row.events },
        { header: 'seconds', value: (row) => Number(row.seconds.toFixed(2)) },
        { header: 'events/s', value: (row) => rate(row.eventsPerSecond), align: 'right' },
        { header: 'MB/s', value: (row) => Math.round(row.megabytesPerSecond) },
        { header: 'bytes/event', value: (row) => Math.round(row.bytesPerEvent) },
        { header: 'full waits', value: (row) => row.fullWaits },
        { header: 'wakes', value: (row) => row.wakes },
      ],
      context.styles,
    ),
  );
}

/** Runs the storm and prints its header line and table (or JSON). */
export async function stormCommand(options: StormOptions, json: boolean, context: CliContext): Promise<number> {
  // Validate before printing anything, so a bad value gives only its error.
  const resolved = resolveStormOptions(options);
  if (!json) {
    context.out(
      `${context.styles.bold('converge storm')}: ${formatNumber(resolved.events)} realistic page-change events per scenario through the lock-free ingest ring ` +
        `(${bytes(ringCapacityFor(resolved.ringBytes))}, ${resolved.batch} events per frame), ` +
        `encoded → ring → decoded on separate threads; ${cpus().length} CPUs, Node ${process.versions.node}`,
    );
  }
  const rows = await runStorm(resolved);
  if (json) context.out(JSON.stringify(rows, null, 2));
  else printStormTable(rows, context);
  return 0;
}

export const storm = defineCommand({
  spec: {
    name: 'storm',
    summary: 'Run an event storm through the lock-free ingest ring on real threads and print its throughput.',
    flags: {
      events: valueFlag('N', 'events per scenario', { defaultText: formatNumber(STORM_DEFAULTS.events), parse: integer(1, 1e9) }),
      producers: valueFlag('LIST', 'producer threads per scenario, comma-separated', { defaultText: STORM_DEFAULTS.producers.join(','), parse: list(integer(1, 64)) }),
      'ring-bytes': valueFlag('N', 'ring size in bytes (a power of two is used)', { defaultText: String(STORM_DEFAULTS.ringBytes), parse: integer(1024, 2 ** 30) }),
      batch: valueFlag('N', 'events per frame', { defaultText: String(STORM_DEFAULTS.batch), parse: integer(1, 65_536) }),
      json: booleanFlag('print the rows as JSON instead of a table'),
    },
    examples: ['converge storm --events 200000 --producers 1,2'],
  },
  async run({ flags }, context) {
    const options: StormOptions = {};
    if (flags.events !== undefined) options.events = flags.events;
    if (flags.producers !== undefined) options.producers = flags.producers;
    if (flags['ring-bytes'] !== undefined) options.ringBytes = flags['ring-bytes'];
    if (flags.batch !== undefined) options.batch = flags.batch;
    return stormCommand(options, flags.json === true, context);
  },
});
