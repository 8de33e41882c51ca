#!/usr/bin/env node
/**
 * The `converge` command: subcommands in src/main/cli/, parsed by src/main/cli/args.ts.
 *
 *   converge demo | storm | bench | watch | serve | worker   [options]
 *   converge <command> --help        converge --version
 *
 * Exit codes: 0 done, 1 the command failed (one line saying what to do), 2 bad command line.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { ConvergeError, ValidationError } from '../shared/errors.js';
import { closest, commandHelp, parseCommand, UsageError, wantsHelp } from './cli/args.js';
import { bench } from './cli/bench.js';
import { type CliIo, type Command, CliError, createContext } from './cli/context.js';
import { demo } from './cli/demo.js';
import { serve } from './cli/serve.js';
import { storm } from './cli/storm.js';
import { VERSION } from './cli/version.js';
import { watch } from './cli/watch.js';
import { worker } from './cli/worker.js';

const PROGRAM = 'converge';
const COMMANDS: readonly Command[] = [demo, watch, serve, worker, bench, storm];
/** Commands whose work may leave handles behind (benchmarks): the process exits when they are done. */
const EXIT_WHEN_DONE = new Set(['bench']);

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.spec.name.length)) + 3;
  return [
    `Usage: ${PROGRAM} <command> [options]`,
    '',
    'Converge: a multi-threaded engine for live context — sources, subscriptions, quiescence.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.spec.name.padEnd(width)}${c.spec.summary}`),
    '',
    'Options:',
    '  -v, --version   print the version',
    '  -h, --help      show this help (also after any command)',
    '',
    `Run \`${PROGRAM} <command> --help\` for a command's options. NO_COLOR=1 turns colours off.`,
    '',
  ].join('\n');
}

/** Runs the command line; resolves to the process exit code. */
export async function main(argv: readonly string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env }, signal: AbortSignal = new AbortController().signal): Promise<number> {
  const context = createContext(io, PROGRAM, signal);
  const [first, ...rest] = argv;
  if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
    const topic = first === 'help' ? COMMANDS.find((c) => c.spec.name === rest[0]) : undefined;
    io.stdout.write(topic === undefined ? overview() : commandHelp(PROGRAM, topic.spec));
    return 0;
  }
  if (first === '-v' || first === '--version' || first === 'version') {
    context.out(VERSION);
    return 0;
  }
  const command = COMMANDS.find((c) => c.spec.name === first);
  if (command === undefined) {
    const names = COMMANDS.map((c) => c.spec.name);
    const what = first.startsWith('-') ? `unknown option ${first}` : `unknown command ${JSON.stringify(first)}`;
    const suggestion = first.startsWith('-') ? closest(first, ['--help', '--version']) : closest(first, names);
    context.err(`${PROGRAM}: ${what}${suggestion === undefined ? '' : `; did you mean ${suggestion}?`} (commands: ${names.join(', ')})`);
    context.err(`Run \`${PROGRAM} --help\` for usage.`);
    return 2;
  }
  const name = command.spec.name;
  if (wantsHelp(rest)) {
    io.stdout.write(commandHelp(PROGRAM, command.spec));
    return 0;
  }
  try {
    const parsed = parseCommand(command.spec, rest);
    return await command.run(parsed, context);
  } catch (error) {
    if (error instanceof UsageError || error instanceof ValidationError) {
      context.err(`${PROGRAM} ${name}: ${error.message}`);
      context.err(`Run \`${PROGRAM} ${name} --help\` for usage.`);
      return 2;
    }
    if (error instanceof CliError) {
      context.err(error.message);
      return error.exitCode;
    }
    if (error instanceof ConvergeError) {
      context.err(`${PROGRAM} ${name}: ${error.message} (${error.code})`);
      return 1;
    }
    // Not an error we expected: say so, and keep the stack for whoever reports it.
    context.err(`${PROGRAM} ${name}: unexpected failure: ${error instanceof Error ? error.message : String(error)}`);
    if (io.env.CONVERGE_DEBUG === '1') context.err(error instanceof Error ? (error.stack ?? '') : '');
    else context.err('Run again with CONVERGE_DEBUG=1 for the stack trace, and please report it.');
    return 1;
  }
}

/** Entry point: Ctrl-C / SIGTERM abort the running command (it cleans up and exits 0); a second one exits at once. */
async function run(): Promise<void> {
  const controller = new AbortController();
  const stop = (): void => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  const argv = process.argv.slice(2);
  const code = await main(argv, { stdout: process.stdout, stderr: process.stderr, env: process.env }, controller.signal);
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  if (EXIT_WHEN_DONE.has(argv[0] ?? '')) process.exit(code);
  process.exitCode = code;
}

/** True when this file is the process's main module (also through the npm bin symlink). */
function isMain(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return pathToFileURL(realpathSync(script)).href === import.meta.url;
  } catch {
    return false;
  }
}

if (isMain()) await run();
