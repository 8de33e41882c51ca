/**
 * `converge watch <dir> [--git] [--where key=value]… [--json]`: maps a directory (or a git
 * repository) into an engine and prints what arrives: one line per matching change and a counters
 * line per settled episode; `--json` prints one JSON object per line instead.
 *
 * With --git the repository is only read: no checkpoint commits or tags are made.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PAGE_CHANGE_KINDS, type PageChangeKind } from '../../shared/events.js';
import { type PagePredicate, validatePredicate } from '../../shared/predicates.js';
import { ValidationError } from '../../shared/errors.js';
import type { EngineCounters } from '../../shared/protocol.js';
import { GitRepoSource } from '../../watchers/git-repo-source.js';
import { LocalFsWatcher } from '../../watchers/local-fs-watcher.js';
import { createEngine, type ContextPageSource } from '../engine.js';
import { booleanFlag, closest, repeatable, UsageError, valueFlag } from './args.js';
import { CliError, type CliContext, defineCommand, untilAborted } from './context.js';
import { LiveScreen, renderWatchScreen, type TerminalStream, type ViewChange } from './live-view.js';

/** `--where` keys: the predicate fields a command line can express. Comma-separated values are lists. */
const WHERE_KEYS = ['dataType', 'sourcePrefix', 'scopeId', 'pageIdPrefix', 'pageIdIn', 'kinds'] as const;
type WhereKey = (typeof WHERE_KEYS)[number];

/** One `--where key=value` clause. */
export function whereClause(text: string, flag: string): [WhereKey, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new UsageError(`${flag} must be key=value (e.g. ${flag} dataType=file), got ${JSON.stringify(text)}`);
  const key = text.slice(0, eq);
  const value = text.slice(eq + 1);
  if (!(WHERE_KEYS as readonly string[]).includes(key)) {
    const suggestion = closest(key, WHERE_KEYS);
    throw new UsageError(`${flag}: unknown key ${JSON.stringify(key)}${suggestion === undefined ? '' : `; did you mean ${suggestion}?`} (keys: ${WHERE_KEYS.join(', ')})`);
  }
  if (value === '') throw new UsageError(`${flag} ${key}= needs a value`);
  return [key as WhereKey, value];
}

/** The predicate of every `--where` clause together (all must hold). */
export function predicateOf(clauses: readonly [WhereKey, string][]): PagePredicate {
  const predicate: PagePredicate = {};
  for (const [key, value] of clauses) {
    if (key in predicate) throw new UsageError(`--where ${key} is given more than once (give a comma-separated list instead)`);
    const items = value.split(',').map((item) => item.trim());
    switch (key) {
      case 'dataType':
        predicate.dataType = items.length === 1 ? items[0]! : items;
        break;
      case 'pageIdIn':
        predicate.pageIdIn = items;
        break;
      case 'kinds':
        // `added` is short for `page_added`.
        predicate.kinds = items.map((kind) => {
          const full = (PAGE_CHANGE_KINDS as readonly string[]).includes(kind) ? kind : `page_${kind}`;
          if (!(PAGE_CHANGE_KINDS as readonly string[]).includes(full)) throw new UsageError(`--where kinds: unknown kind ${JSON.stringify(kind)} (kinds: ${PAGE_CHANGE_KINDS.map((k) => k.replace(/^page_/, '')).join(', ')})`);
          return full as PageChangeKind;
        });
        break;
      default:
        predicate[key] = value;
    }
  }
  try {
    return validatePredicate(predicate, '--where');
  } catch (error) {
    if (error instanceof ValidationError) throw new UsageError(error.message);
    throw error;
  }
}

/** An existing directory, or a one-line error that says what to do. */
function existingDirectory(path: string): string {
  const absolute = resolve(path);
  let isDirectory = false;
  try {
    isDirectory = statSync(absolute).isDirectory();
  } catch {
    throw new CliError(`converge watch: no such directory: ${absolute} (give the path of a directory to watch)`, 2);
  }
  if (!isDirectory) throw new CliError(`converge watch: not a directory: ${absolute} (give the directory that contains it)`, 2);
  return absolute;
}

/** The source for `root`: its files, or (`git`) the working tree and its upstream, never written to. */
function sourceFor(root: string, git: boolean): ContextPageSource {
  if (!git) return new LocalFsWatcher(root);
  if (!existsSync(join(root, '.git'))) throw new CliError(`converge watch: not a git repository: ${root} (watch it without --git, or run git init there)`, 2);
  // Only a repository with a remote has an upstream to follow.
  const hasRemote = /^\[remote "/m.test(readIfExists(join(root, '.git', 'config')));
  return new GitRepoSource(root, { checkpointOnQuiescence: false, ...(hasRemote ? {} : { remote: false }) });
}

function readIfExists(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

export const watch = defineCommand({
  spec: {
    name: 'watch',
    summary: 'Watch a directory (or a git repository) and print its changes and the engine counters as they settle.',
    details:
      'On a terminal: a live view (counters, episodes, latest changes) redrawn in place. Piped, or with\n' +
      '--json: one line per change and per settled episode.\n' +
      `--where narrows what is shown; keys: ${WHERE_KEYS.join(', ')} (comma-separated values are lists).`,
    positionals: [{ name: 'dir', description: 'the directory to watch', required: true }],
    flags: {
      git: booleanFlag('watch the directory as a git repository (commits, branches) instead of files'),
      where: repeatable(valueFlag('KEY=VALUE', 'print only changes matching this predicate field', { parse: whereClause })),
      json: booleanFlag('print one JSON object per line (changes and episodes)'),
    },
    examples: ['converge watch . --where dataType=file', 'converge watch ~/src/app --git --json'],
  },
  async run({ flags, positionals }, context: CliContext) {
    const root = existingDirectory(positionals[0]!);
    const predicate = predicateOf(flags.where ?? []);
    const source = sourceFor(root, flags.git === true);
    const json = flags.json === true;
    const live = !json && context.stdout.isTTY === true;
    const engine = await createEngine();
    const view = { title: `converge watch ${root}${flags.git === true ? ' (git)' : ''}`, state: 'starting', counters: undefined as EngineCounters | undefined, episodes: 0, lastEpisode: undefined as { id: string; durationMs: number } | undefined, changes: [] as ViewChange[], changesSeen: 0 };
    const screen = live ? new LiveScreen(context.stdout as TerminalStream, (width, height) => renderWatchScreen(view, width, height, context.styles)) : undefined;
    let poll: NodeJS.Timeout | undefined;
    let refreshSoon = (): void => undefined;
    try {
      await engine.subscribe({
        predicate,
        handler: (event) => {
          const at = event.ts ?? Date.now();
          if (json) context.out(JSON.stringify({ type: 'change', kind: event.kind, pageId: event.pageId, dataType: event.dataType, sourceId: event.sourceId, ts: event.ts }));
          else if (screen !== undefined) {
            view.changes.push({ at, kind: event.kind, pageId: event.pageId });
            if (view.changes.length > 500) view.changes.splice(0, view.changes.length - 200);
            view.changesSeen++;
            screen.invalidate();
          } else context.out(`${context.styles.dim(new Date(at).toISOString().slice(11, 23))} ${event.kind.padEnd(12)} ${event.pageId}`);
        },
      });
      engine.on('quiescence', (report) => {
        view.episodes++;
        view.lastEpisode = { id: report.episodeId, durationMs: report.durationMs };
        if (json) context.out(JSON.stringify({ type: 'episode', ...report }));
        else if (screen !== undefined) {
          screen.invalidate();
          refreshSoon();
        }
        else {
          const c = report.counters;
          context.out(context.styles.cyan(`settled ${report.episodeId} in ${report.durationMs.toFixed(0)} ms: ${c.eventsReceived} events, ${c.dispatchesEmitted} shown, ${c.dispatchesDamped} damped, ${c.dispatchesRateLimited} rate-limited`));
        }
      });
      await engine.mapSource(source);
      if (json) context.out(JSON.stringify({ type: 'watching', root, git: flags.git === true, predicate }));
      else if (screen === undefined) context.out(`${context.styles.bold('converge watch')}: watching ${root}${flags.git === true ? ' (git)' : ''}; Ctrl-C to stop`);
      if (screen !== undefined) {
        // The counters on screen come from the engine's status, a few times a second.
        const refresh = async (): Promise<void> => {
          const status = await engine.getStatus();
          view.counters = status.counters;
          view.state = `watching — ${status.state}`;
          screen.invalidate();
        };
        refreshSoon = () => void refresh().catch(() => undefined);
        await refresh();
        poll = setInterval(refreshSoon, 250);
      }
      await untilAborted(context.signal);
    } finally {
      clearInterval(poll);
      screen?.close();
      await engine.close();
    }
    if (screen !== undefined) context.out(`converge watch: stopped after ${view.changesSeen} changes in ${view.episodes} episodes`);
    return 0;
  },
});
