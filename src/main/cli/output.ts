import Table from 'cli-table3';

/**
 * Terminal output of `converge`: colour only on a terminal that wants it (honours `NO_COLOR`,
 * `FORCE_COLOR` and `TERM=dumb`), and a plain aligned table — no `(index)` column, no quoted
 * numbers — that reads the same in a terminal, a log file or a pipe.
 */

/** Whether `stream` gets ANSI colours (https://no-color.org: NO_COLOR set and non-empty disables). */
export function colorEnabled(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '') return env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false';
  return stream.isTTY === true && env.TERM !== 'dumb';
}

type Style = (text: string) => string;

/** ANSI styles, or identities when colour is off. */
export interface Styles {
  readonly enabled: boolean;
  readonly bold: Style;
  readonly dim: Style;
  readonly red: Style;
  readonly green: Style;
  readonly yellow: Style;
  readonly cyan: Style;
}

const ansi = (open: number, close: number): Style => (text) => `\u001b[${open}m${text}\u001b[${close}m`;
const plain: Style = (text) => text;

/** Styles for `stream` (default: stdout). */
export function stylesFor(stream: { isTTY?: boolean } = process.stdout, env: NodeJS.ProcessEnv = process.env): Styles {
  const enabled = colorEnabled(stream, env);
  if (!enabled) return { enabled, bold: plain, dim: plain, red: plain, green: plain, yellow: plain, cyan: plain };
  return { enabled, bold: ansi(1, 22), dim: ansi(2, 22), red: ansi(31, 39), green: ansi(32, 39), yellow: ansi(33, 39), cyan: ansi(36, 39) };
}

/** Removes ANSI escape sequences (for width computations). */
export function stripAnsi(text: string): string {
  return text.replace(/\u001b\[[0-9;]*m/g, '');
}

/** A column of {@link renderTable}. Numbers align right unless `align` says otherwise. */
export interface Column<Row> {
  readonly header: string;
  readonly value: (row: Row) => string | number;
  readonly align?: 'left' | 'right';
}

/** Formats a number for a table: grouped thousands, at most `digits` decimals. */
export function formatNumber(value: number, digits = 0): string {
  if (!Number.isFinite(value)) return String(value);
  return value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

/** Light box-drawing borders without rules between rows (the header gets one, see below). */
const BOX = {
  top: '─',
  'top-mid': '┬',
  'top-left': '┌',
  'top-right': '┐',
  bottom: '─',
  'bottom-mid': '┴',
  'bottom-left': '└',
  'bottom-right': '┘',
  left: '│',
  'left-mid': '',
  mid: '',
  'mid-mid': '',
  right: '│',
  'right-mid': '',
  middle: '│',
} as const;

/**
 * A table (cli-table3) with a header row and aligned columns: no index column, numbers formatted
 * with {@link formatNumber} and right-aligned, strings as they are. Colour only through `styles`.
 */
export function renderTable<Row>(rows: readonly Row[], columns: readonly Column<Row>[], styles: Styles = stylesFor()): string {
  const cells = rows.map((row) => columns.map((column) => column.value(row)));
  const alignOf = (c: number): 'left' | 'right' => columns[c]!.align ?? (cells.length > 0 && cells.every((row) => typeof row[c] === 'number') ? 'right' : 'left');
  const table = new Table({
    head: columns.map((column) => styles.bold(column.header)),
    colAligns: columns.map((_, c) => alignOf(c)),
    chars: BOX,
    style: { head: [], border: [], 'padding-left': 1, 'padding-right': 1 },
  });
  for (const row of cells) table.push(row.map((cell) => (typeof cell === 'number' ? formatNumber(cell, Number.isInteger(cell) ? 0 : 2) : cell)));
  // A rule under the (one-line) header only: the top border with inner joints.
  const [top = '', header = '', ...body] = table.toString().split('\n');
  const rule = top.replace('┌', '├').replaceAll('┬', '┼').replace('┐', '┤');
  return [top, header, rule, ...body].join('\n');
}
