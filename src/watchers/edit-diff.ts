/**
 * Token-level edit diffs for `page_replaced` events (`editDiff`): words, whitespace runs and
 * punctuation are tokens; the shortest edit script (Myers) is rendered wdiff-style, e.g.
 * `the [-brown-]{+red+} fox`. Past {@link MAX_EDIT_DISTANCE} edits the whole text is shown replaced.
 */

/** Beyond this many token edits the diff is not worth its cost: the result shows a full replacement. */
export const MAX_EDIT_DISTANCE = 2_000;

/** Splits text into word, whitespace and single-punctuation tokens. */
export function tokenize(text: string): string[] {
  return text.match(/\s+|[\p{L}\p{N}_]+|[^\s\p{L}\p{N}_]/gu) ?? [];
}

type Op = ['=' | '-' | '+', string];

/** Myers' O((N+M)·D) shortest edit script over tokens; undefined when D exceeds the limit. */
function editScript(a: readonly string[], b: readonly string[], limit: number): Op[] | undefined {
  const n = a.length;
  const m = b.length;
  const max = Math.min(n + m, limit);
  const offset = max + 1;
  const v = new Int32Array(2 * max + 3);
  const trace: Int32Array[] = [];
  for (let d = 0; d <= max; d++) {
    trace.push(v.slice());
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!) ? v[offset + k + 1]! : v[offset + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[offset + k] = x;
      if (x >= n && y >= m) return backtrack(trace, a, b, d, offset);
    }
  }
  return undefined;
}

function backtrack(trace: Int32Array[], a: readonly string[], b: readonly string[], dEnd: number, offset: number): Op[] {
  const ops: Op[] = [];
  let x = a.length;
  let y = b.length;
  for (let d = dEnd; d > 0; d--) {
    const v = trace[d]!;
    const k = x - y;
    const prevK = k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!) ? k + 1 : k - 1;
    const prevX = v[offset + prevK]!;
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      ops.push(['=', a[--x]!]);
      y--;
    }
    if (x === prevX) ops.push(['+', b[--y]!]);
    else ops.push(['-', a[--x]!]);
  }
  while (x > 0 && y > 0) {
    ops.push(['=', a[--x]!]);
    y--;
  }
  return ops.reverse();
}

/** The token-level diff of `before` → `after`, wdiff-style: `[-removed-]` and `{+added+}`. */
export function editDiff(before: string, after: string): string {
  const a = tokenize(before);
  const b = tokenize(after);
  const ops = editScript(a, b, MAX_EDIT_DISTANCE);
  if (ops === undefined) return `[-${before}-]{+${after}+}`;
  let out = '';
  let i = 0;
  while (i < ops.length) {
    const [op] = ops[i]!;
    let run = '';
    while (i < ops.length && ops[i]![0] === op) run += ops[i++]![1];
    out += op === '=' ? run : op === '-' ? `[-${run}-]` : `{+${run}+}`;
  }
  return out;
}
