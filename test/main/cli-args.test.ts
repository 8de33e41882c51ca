/**
 * The CLI's argument parser: every flag form, every refusal (a UsageError, exit code 2, naming the
 * flag), the closest-flag suggestion and the generated help.
 */
import { describe, expect, it } from 'vitest';
import { booleanFlag, closest, commandHelp, editDistance, integer, list, parseCommand, repeatable, UsageError, valueFlag, wantsHelp, type CommandSpec } from '../../src/main/cli/args.js';
import { colorEnabled, renderTable, stylesFor } from '../../src/main/cli/output.js';
import { predicateOf, whereClause } from '../../src/main/cli/watch.js';

const spec = {
  name: 'try',
  summary: 'A command for tests.',
  positionals: [{ name: 'dir', description: 'a directory', required: true }],
  flags: {
    port: valueFlag('N', 'a port', { parse: integer(0, 65_535), defaultText: '8080' }),
    producers: valueFlag('LIST', 'counts', { parse: list(integer(1, 64)) }),
    where: repeatable(valueFlag('K=V', 'a clause')),
    json: booleanFlag('JSON output', { short: 'j' }),
  },
} satisfies CommandSpec;

const refusal = (argv: string[]): string => {
  try {
    parseCommand(spec, argv);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).exitCode).toBe(2);
    return (error as Error).message;
  }
  throw new Error(`accepted ${argv.join(' ')}`);
};

describe('parseCommand', () => {
  it('reads --flag value, --flag=value, short booleans, repeatable flags, lists and positionals', () => {
    const parsed = parseCommand(spec, ['here', '--port', '80', '--producers=1,2,3', '-j', '--where', 'a=1', '--where=b=2']);
    expect(parsed.positionals).toEqual(['here']);
    expect(parsed.flags).toEqual({ port: 80, producers: [1, 2, 3], json: true, where: ['a=1', 'b=2'] });
    expect(parseCommand(spec, ['x']).flags).toEqual({});
  });

  it('treats everything after -- as positionals', () => {
    expect(() => parseCommand(spec, ['--', '--port'])).not.toThrow();
    expect(parseCommand(spec, ['--', '--port']).positionals).toEqual(['--port']);
  });

  it('suggests the closest flag for a typo or a prefix', () => {
    expect(refusal(['d', '--prot', '1'])).toBe('unknown option --prot; did you mean --port?');
    expect(refusal(['d', '--produce', '1'])).toBe('unknown option --produce; did you mean --producers?');
    expect(refusal(['d', '--jsno'])).toBe('unknown option --jsno; did you mean --json?');
    expect(refusal(['d', '--zzzzzzzz'])).toBe('unknown option --zzzzzzzz');
    expect(refusal(['d', '-x'])).toMatch(/^unknown option -x/);
  });

  it('refuses bad values naming the flag and what it wanted', () => {
    expect(refusal(['d', '--port', 'http'])).toBe('--port must be a whole number from 0 to 65535, got "http"');
    expect(refusal(['d', '--port', '70000'])).toContain('--port must be a whole number from 0 to 65535');
    expect(refusal(['d', '--port', '1.5'])).toContain('--port must be a whole number');
    expect(refusal(['d', '--producers', '1,,2'])).toContain('--producers must be a comma-separated list without empty items');
    expect(refusal(['d', '--producers', '1,99'])).toContain('--producers must be a whole number from 1 to 64, got "99"');
    expect(refusal(['d', '--port'])).toBe('--port needs a value (--port N)');
    expect(refusal(['d', '--port', '--json'])).toBe('--port needs a value (--port N)');
    expect(refusal(['d', '--json=yes'])).toBe('--json takes no value, got --json=yes');
    expect(refusal(['d', '--port', '1', '--port', '2'])).toBe('--port is given more than once');
  });

  it('checks positionals: a missing required one, an extra one', () => {
    expect(refusal([])).toBe('missing <dir>: a directory');
    expect(refusal(['a', 'b'])).toBe('unexpected argument "b"');
  });

  it('runs the cross-flag check last', () => {
    const checked: CommandSpec = {
      ...spec,
      check: ({ flags }) => {
        if (flags.json !== undefined && flags.port !== undefined) throw new UsageError('give either --json or --port');
      },
    };
    expect(() => parseCommand(checked, ['d', '--json', '--port', '1'])).toThrow('give either --json or --port');
  });

  it('spots a help request before any --', () => {
    expect(wantsHelp(['x', '--help'])).toBe(true);
    expect(wantsHelp(['-h'])).toBe(true);
    expect(wantsHelp(['--', '--help'])).toBe(false);
  });

  it('writes help with every flag, its placeholder, default and repeatability', () => {
    const help = commandHelp('converge', spec);
    expect(help).toContain('Usage: converge try [options] <dir>');
    expect(help).toMatch(/--port N\s+a port \(default 8080\)/);
    expect(help).toMatch(/-j, --json\s+JSON output/);
    expect(help).toContain('(repeatable)');
    expect(help).toContain('-h, --help');
  });
});

describe('edit distance and suggestions', () => {
  it('counts insertions, deletions, substitutions and adjacent transpositions', () => {
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('port', 'port')).toBe(0);
    expect(editDistance('port', 'prot')).toBe(1);
    expect(editDistance('kitten', 'sitting')).toBe(3);
  });

  it('suggests only likely typos', () => {
    expect(closest('sreve', ['demo', 'serve', 'watch'])).toBe('serve');
    expect(closest('wacth', ['demo', 'serve', 'watch'])).toBe('watch');
    expect(closest('xyz', ['demo', 'serve', 'watch'])).toBeUndefined();
  });
});

describe('--where', () => {
  it('builds a validated predicate from key=value clauses', () => {
    const clauses = ['dataType=file,doc', 'pageIdPrefix=file:src/', 'kinds=added,page_graph_edge_removed'].map((c) => whereClause(c, '--where'));
    expect(predicateOf(clauses)).toEqual({ dataType: ['file', 'doc'], pageIdPrefix: 'file:src/', kinds: ['page_added', 'page_graph_edge_removed'] });
  });

  it('refuses unknown keys (with a suggestion), bad kinds, empty values and repeated keys', () => {
    expect(() => whereClause('datatype=x', '--where')).toThrow(/unknown key "datatype"; did you mean dataType\?/);
    expect(() => whereClause('dataType', '--where')).toThrow(/must be key=value/);
    expect(() => whereClause('dataType=', '--where')).toThrow(/needs a value/);
    expect(() => predicateOf([whereClause('kinds=added,moved', '--where')])).toThrow(/unknown kind "moved"/);
    expect(() => predicateOf([whereClause('scopeId=a', '--where'), whereClause('scopeId=b', '--where')])).toThrow(/given more than once/);
  });
});

describe('terminal output', () => {
  it('honours NO_COLOR, FORCE_COLOR, TERM=dumb and non-TTY streams', () => {
    expect(colorEnabled({ isTTY: true }, {})).toBe(true);
    expect(colorEnabled({ isTTY: false }, {})).toBe(false);
    expect(colorEnabled({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(colorEnabled({ isTTY: true }, { NO_COLOR: '' })).toBe(true);
    expect(colorEnabled({ isTTY: true }, { TERM: 'dumb' })).toBe(false);
    expect(colorEnabled({ isTTY: false }, { FORCE_COLOR: '1' })).toBe(true);
    expect(colorEnabled({ isTTY: false }, { FORCE_COLOR: '1', NO_COLOR: '1' })).toBe(false);
  });

  it('renders an aligned table: numbers right-aligned and grouped, no index column, no quotes', () => {
    const table = renderTable(
      [
        { name: 'a', n: 1234567 },
        { name: 'longer', n: 5 },
      ],
      [
        { header: 'name', value: (r) => r.name },
        { header: 'events', value: (r) => r.n },
      ],
      stylesFor({ isTTY: false }, {}),
    );
    expect(table.split('\n')).toEqual([
      '┌────────┬───────────┐',
      '│ name   │    events │',
      '├────────┼───────────┤',
      '│ a      │ 1,234,567 │',
      '│ longer │         5 │',
      '└────────┴───────────┘',
    ]);
  });
});
