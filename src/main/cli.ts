#!/usr/bin/env node
/**
 * The `converge` command.
 *
 *   converge [storm] [--events N] [--producers 1,2,3] [--ring-bytes N] [--batch N] [--json]
 *
 * `storm` (the default for now) runs an event storm through the lock-free ingest ring on real
 * threads and prints its throughput table.
 */
import { parseArgs } from 'node:util';
import { cpus } from 'node:os';
import { ValidationError } from '../shared/errors.js';
import { ringCapacityFor } from '../shared/ring.js';
import { STORM_DEFAULTS, resolveStormOptions, runStorm, type StormOptions, type StormRow } from './storm.js';

const HELP = `Usage: converge [command] [options]

Commands:
  storm   (default) run an event storm through the lock-free ingest ring and print its throughput

Storm options:
  --events N          events per scenario (default ${STORM_DEFAULTS.events})
  --producers LIST    producer threads per scenario, comma-separated (default ${STORM_DEFAULTS.producers.join(',')})
  --ring-bytes N      ring size in bytes (default ${STORM_DEFAULTS.ringBytes})
  --batch N           events per frame (default ${STORM_DEFAULTS.batch})
  --json              print the rows as JSON instead of a table
  -h, --help          show this help
`;

/** Parses a whole decimal number, or names the flag it came from. */
function integer(flag: string, text: string): number {
  if (!/^\d+$/.test(text.replaceAll('_', ''))) throw new ValidationError(`--${flag}`, `must be a whole number, got ${JSON.stringify(text)}`);
  return Number(text.replaceAll('_', ''));
}

const bytes = (n: number): string => (n >= 1024 * 1024 ? `${n / 1024 / 1024} MiB` : n >= 1024 ? `${n / 1024} KiB` : `${n} bytes`);
const rate = (n: number): string => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : `${(n / 1e3).toFixed(0)} k`);

function tableOf(rows: readonly StormRow[]): Record<string, string | number>[] {
  return rows.map((row) => ({
    producers: row.producers,
    events: row.events.toLocaleString('en-US'),
    seconds: Number(row.seconds.toFixed(2)),
    'events/s': rate(row.eventsPerSecond),
    'MB/s': Number(row.megabytesPerSecond.toFixed(0)),
    'bytes/event': Number(row.bytesPerEvent.toFixed(0)),
    'full waits': row.fullWaits,
    wakes: row.wakes,
  }));
}

async function storm(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      events: { type: 'string' },
      producers: { type: 'string' },
      'ring-bytes': { type: 'string' },
      batch: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const options: StormOptions = {};
  if (values.events !== undefined) options.events = integer('events', values.events);
  if (values.producers !== undefined) options.producers = values.producers.split(',').map((p) => integer('producers', p.trim()));
  if (values['ring-bytes'] !== undefined) options.ringBytes = integer('ring-bytes', values['ring-bytes']);
  if (values.batch !== undefined) options.batch = integer('batch', values.batch);
  // Validate before printing anything, so a bad flag gives only its error.
  const resolved = resolveStormOptions(options);
  if (!values.json) {
    console.log(
      `converge storm: ${resolved.events.toLocaleString('en-US')} realistic page-change events per scenario through the lock-free ingest ring ` +
        `(${bytes(ringCapacityFor(resolved.ringBytes))}, ${resolved.batch} events per frame), ` +
        `encoded → ring → decoded on separate threads; ${cpus().length} CPUs, Node ${process.versions.node}`,
    );
  }
  const rows = await runStorm(resolved);
  if (values.json) console.log(JSON.stringify(rows, null, 2));
  else console.table(tableOf(rows));
}

/** Runs the command line; resolves to the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '-h' || first === '--help' || first === 'help') {
    console.log(HELP);
    return 0;
  }
  const command = first === undefined || first.startsWith('-') ? 'storm' : first;
  const args = first === undefined || first.startsWith('-') ? [...argv] : rest;
  if (args.includes('-h') || args.includes('--help')) {
    console.log(HELP);
    return 0;
  }
  try {
    switch (command) {
      case 'storm':
        await storm(args);
        return 0;
      default:
        console.error(`converge: unknown command ${JSON.stringify(command)}\n\n${HELP}`);
        return 2;
    }
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    console.error(`converge ${command}: ${error instanceof Error ? error.message : String(error)}${typeof code === 'string' ? ` (${code})` : ''}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
