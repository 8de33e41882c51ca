/**
 * The command line parser of `converge`: small, strict and dependency-free. Each subcommand declares
 * its flags and positionals once ({@link CommandSpec}); from that come parsing, validation (every
 * value goes through its flag's parser, which names the flag) and the `--help` text. Anything the
 * parser refuses is a {@link UsageError}: one line, exit code 2, and for an unknown flag the closest
 * known one.
 */

/** Bad command line input. The CLI prints its message and exits with code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly exitCode = 2;
}

/** A flag of a subcommand. `parse` turns its text into a value or throws a {@link UsageError}. */
export interface FlagSpec<T = unknown> {
  readonly kind: 'boolean' | 'value';
  readonly description: string;
  /** Placeholder in the help text (`--port N`). */
  readonly placeholder?: string;
  readonly short?: string;
  /** May be given more than once: the value is then an array of every occurrence, in order. */
  readonly multiple?: boolean;
  /** Shown in the help text. */
  readonly defaultText?: string;
  readonly parse: (text: string, flag: string) => T;
}

/** A positional argument. */
export interface PositionalSpec {
  readonly name: string;
  readonly description: string;
  readonly required: boolean;
}

/** A subcommand: its flags, positionals and help. */
export interface CommandSpec<F extends Record<string, FlagSpec> = Record<string, FlagSpec>> {
  readonly name: string;
  readonly summary: string;
  /** Paragraphs after the usage line of `--help`. */
  readonly details?: string;
  readonly positionals?: readonly PositionalSpec[];
  readonly flags: F;
  /** Checks across flags (e.g. two that exclude each other); throws a {@link UsageError}. */
  readonly check?: (parsed: Parsed<F>) => void;
  readonly examples?: readonly string[];
}

type FlagValue<S> = S extends FlagSpec<infer T> ? (S extends { multiple: true } ? T[] : T) : never;

/** The result of parsing: each flag's value (undefined when absent) and the positionals. */
export interface Parsed<F extends Record<string, FlagSpec>> {
  readonly flags: { [K in keyof F]: FlagValue<F[K]> | undefined };
  readonly positionals: readonly string[];
}

// ── flag constructors ────────────────────────────────────────────────────────────────────────────

/** A flag without a value. */
export function booleanFlag(description: string, options: { short?: string } = {}): FlagSpec<boolean> & { kind: 'boolean' } {
  return { kind: 'boolean', description, ...options, parse: () => true };
}

/** A flag with a string value, checked by `parse` (identity by default). */
export function valueFlag<T = string>(
  placeholder: string,
  description: string,
  options: { short?: string; defaultText?: string; parse?: (text: string, flag: string) => T } = {},
): FlagSpec<T> {
  const { parse, ...rest } = options;
  return { kind: 'value', placeholder, description, ...rest, parse: parse ?? ((text: string) => text as unknown as T) };
}

/** The same flag, repeatable. */
export function repeatable<T>(flag: FlagSpec<T>): FlagSpec<T> & { multiple: true } {
  return { ...flag, multiple: true };
}

// ── value parsers (each names the flag and says what it wanted) ─────────────────────────────────

/** A whole number in [min, max]; `_` separators allowed (`1_000`). */
export function integer(min: number, max = Number.MAX_SAFE_INTEGER): (text: string, flag: string) => number {
  return (text, flag) => {
    const clean = text.replaceAll('_', '');
    const value = /^-?\d+$/.test(clean) ? Number(clean) : Number.NaN;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `a whole number ≥ ${min}` : `a whole number from ${min} to ${max}`;
      throw new UsageError(`${flag} must be ${range}, got ${JSON.stringify(text)}`);
    }
    return value;
  };
}

/** A comma-separated list, each item parsed by `item`. */
export function list<T>(item: (text: string, flag: string) => T): (text: string, flag: string) => T[] {
  return (text, flag) => {
    const parts = text.split(',').map((part) => part.trim());
    if (parts.some((part) => part === '')) throw new UsageError(`${flag} must be a comma-separated list without empty items, got ${JSON.stringify(text)}`);
    return parts.map((part) => item(part, flag));
  };
}

/** A non-empty string. */
export function nonEmpty(text: string, flag: string): string {
  if (text.trim() === '') throw new UsageError(`${flag} must not be empty`);
  return text;
}

// ── edit distance ────────────────────────────────────────────────────────────────────────────────

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array<number>(rows * cols).fill(0);
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[(i - 1) * cols + j]! + 1, d[i * cols + j - 1]! + 1, d[(i - 1) * cols + j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[(i - 2) * cols + j - 2]! + 1);
      d[i * cols + j] = best;
    }
  }
  return d[rows * cols - 1]!;
}

/** The candidate closest to `word`, if it is close enough to be a likely typo (or a prefix). */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const distance = candidate.startsWith(word) && word.length >= 2 ? 0.5 : editDistance(word, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= Math.max(1, Math.floor(word.length / 3)) + 0.5 ? best : undefined;
}

// ── parsing ──────────────────────────────────────────────────────────────────────────────────────

const HELP_FLAGS = new Set(['-h', '--help']);

/** True when `argv` asks for help (before any `--`). */
export function wantsHelp(argv: readonly string[]): boolean {
  for (const arg of argv) {
    if (arg === '--') return false;
    if (HELP_FLAGS.has(arg)) return true;
  }
  return false;
}

/** Parses `argv` (the arguments after the subcommand) against `spec`. Throws {@link UsageError}. */
export function parseCommand<F extends Record<string, FlagSpec>>(spec: CommandSpec<F>, argv: readonly string[]): Parsed<F> {
  const flags: Record<string, unknown> = {};
  const positionals: string[] = [];
  const byShort = new Map<string, string>();
  for (const [name, flag] of Object.entries(spec.flags)) if (flag.short !== undefined) byShort.set(flag.short, name);
  const known = Object.keys(spec.flags).map((name) => `--${name}`);

  const take = (name: string, text: string | undefined, display: string): void => {
    const flag = spec.flags[name]!;
    if (flag.kind === 'boolean') {
      if (text !== undefined) throw new UsageError(`${display} takes no value, got ${display}=${text}`);
    } else if (text === undefined) {
      throw new UsageError(`${display} needs a value (${display} ${flag.placeholder ?? 'VALUE'})`);
    }
    const value = flag.parse(text ?? '', display);
    if (flag.multiple === true) flags[name] = [...((flags[name] as unknown[] | undefined) ?? []), value];
    else if (name in flags) throw new UsageError(`${display} is given more than once`);
    else flags[name] = value;
  };

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = arg.slice(2, eq === -1 ? undefined : eq);
      const flag = spec.flags[name];
      if (flag === undefined || name === '') {
        const suggestion = closest(`--${name}`, known);
        throw new UsageError(`unknown option --${name}${suggestion === undefined ? '' : `; did you mean ${suggestion}?`}`);
      }
      let text = eq === -1 ? undefined : arg.slice(eq + 1);
      if (text === undefined && flag.kind === 'value' && i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) text = argv[++i];
      take(name, text, `--${name}`);
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1 && !/^-\d/.test(arg)) {
      const name = byShort.get(arg.slice(1));
      if (name === undefined) {
        const suggestion = closest(arg, [...known, ...[...byShort.keys()].map((s) => `-${s}`)]);
        throw new UsageError(`unknown option ${arg}${suggestion === undefined ? '' : `; did you mean ${suggestion}?`}`);
      }
      const flag = spec.flags[name]!;
      const text = flag.kind === 'value' && i + 1 < argv.length && !argv[i + 1]!.startsWith('--') ? argv[++i] : undefined;
      take(name, text, `--${name}`);
      continue;
    }
    positionals.push(arg);
  }

  const declared = spec.positionals ?? [];
  if (positionals.length > declared.length) {
    const extra = positionals[declared.length]!;
    throw new UsageError(declared.length === 0 ? `takes no arguments, got ${JSON.stringify(extra)}` : `unexpected argument ${JSON.stringify(extra)}`);
  }
  for (const [i, positional] of declared.entries()) {
    if (positional.required && positionals[i] === undefined) throw new UsageError(`missing <${positional.name}>: ${positional.description}`);
  }
  const parsed = { flags, positionals } as Parsed<F>;
  spec.check?.(parsed);
  return parsed;
}

// ── help ─────────────────────────────────────────────────────────────────────────────────────────

/** The `--help` text of a subcommand. */
export function commandHelp(program: string, spec: CommandSpec): string {
  const positionals = (spec.positionals ?? []).map((p) => (p.required ? `<${p.name}>` : `[${p.name}]`));
  const lines = [`Usage: ${program} ${spec.name}${Object.keys(spec.flags).length > 0 ? ' [options]' : ''}${positionals.length > 0 ? ` ${positionals.join(' ')}` : ''}`, '', spec.summary];
  if (spec.details !== undefined) lines.push('', spec.details);
  if ((spec.positionals ?? []).length > 0) {
    lines.push('', 'Arguments:');
    for (const p of spec.positionals!) lines.push(`  ${p.name.padEnd(22)}${p.description}`);
  }
  const rows = Object.entries(spec.flags).map(([name, flag]) => {
    const left = `${flag.short === undefined ? '    ' : `-${flag.short}, `}--${name}${flag.kind === 'value' ? ` ${flag.placeholder ?? 'VALUE'}` : ''}`;
    const right = `${flag.description}${flag.defaultText === undefined ? '' : ` (default ${flag.defaultText})`}${flag.multiple === true ? ' (repeatable)' : ''}`;
    return [left, right] as const;
  });
  rows.push(['-h, --help', 'show this help']);
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  lines.push('', 'Options:');
  for (const [left, right] of rows) lines.push(`  ${left.padEnd(width)}${right}`);
  if (spec.examples !== undefined && spec.examples.length > 0) {
    lines.push('', 'Examples:');
    for (const example of spec.examples) lines.push(`  ${example}`);
  }
  return `${lines.join('\n')}\n`;
}
