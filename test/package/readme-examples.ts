/**
 * The README's runnable examples. A fenced block whose info string is `ts run` (or `js run`) is an
 * example the package test executes, as written, in an application that installed the packed
 * tarball. Words after `run` say what it needs:
 *
 *   ```ts run              runs everywhere
 *   ```ts run pg           needs PostgreSQL: skipped without CONVERGE_PG_URL, which it gets as DATABASE_URL
 *   ```ts run sqlite       needs the optional peer dependency better-sqlite3
 *
 * GitHub and editors highlight such a block by its first word, so the marker costs readers nothing.
 */

/** One runnable block of the README. */
export interface ReadmeExample {
  /** 1-based line of the opening fence, for messages. */
  readonly line: number;
  readonly language: 'ts' | 'js';
  readonly needs: readonly string[];
  readonly code: string;
}

const KNOWN_NEEDS = new Set(['pg', 'sqlite']);

/** The runnable examples of `markdown`, in order. Throws on a marker it does not understand. */
export function readmeExamples(markdown: string): ReadmeExample[] {
  const examples: ReadmeExample[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(`{3,})(\S*)\s*(.*)$/.exec(lines[i]!);
    if (open === null) continue;
    const [, fence, language, rest] = open as unknown as [string, string, string, string];
    let end = i + 1;
    while (end < lines.length && !lines[end]!.startsWith(fence)) end++;
    const words = rest.trim().split(/\s+/).filter(Boolean);
    if (words[0] === 'run') {
      if (language !== 'ts' && language !== 'js') throw new Error(`README line ${i + 1}: a runnable example must be \`ts run\` or \`js run\`, got \`${language} run\``);
      const needs = words.slice(1);
      for (const need of needs) if (!KNOWN_NEEDS.has(need)) throw new Error(`README line ${i + 1}: unknown example requirement "${need}" (known: ${[...KNOWN_NEEDS].join(', ')})`);
      examples.push({ line: i + 1, language, needs, code: `${lines.slice(i + 1, end).join('\n')}\n` });
    }
    i = end;
  }
  return examples;
}
