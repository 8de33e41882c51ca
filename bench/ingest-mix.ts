/**
 * The ingest benchmark's workload (issue 10): a realistic subscription mix and events that match
 * ~1.5 of its subscriptions each at any size. Shared by bench/ingest.bench.ts and profiling scripts.
 */
import type { PageChangeEvent, PagePredicate } from '../src/main/index.js';

/**
 * The families of the subscription mix, interleaved so that every prefix of the list (10
 * subscriptions as well as 100 000) has the same proportions: 50 % dataType (with a kinds filter),
 * 25 % sourcePrefix, 15 % scopeId, 10 % pageIdPrefix.
 */
const FAMILIES = 'DSDCDSDPDSDCDSDCDPDS';

/** How many subscriptions of each family a mix of `count` holds: the interest space of each family. */
function space(count: number): { types: number; sources: number; scopes: number; prefixes: number } {
  const n = { D: 0, S: 0, C: 0, P: 0 };
  for (let i = 0; i < count; i++) n[FAMILIES[i % FAMILIES.length] as keyof typeof n]++;
  return { types: Math.max(1, n.D), sources: Math.max(1, n.S), scopes: Math.max(1, n.C), prefixes: Math.max(1, n.P) };
}

/**
 * A realistic mix over the indexed keys (dataType, sourcePrefix, scopeId, pageIdPrefix). Each
 * subscription of a family watches its own value, and the interest space grows with the number of
 * subscriptions (more subscribers watch more kinds of pages, not all the same ones), so an event
 * matches ~1.5 subscriptions whatever their number (see {@link events}); what grows is the number
 * of subscriptions that do NOT match, which is what the index must not pay for.
 */
export function predicates(count: number): PagePredicate[] {
  const out: PagePredicate[] = [];
  const next = { D: 0, S: 0, C: 0, P: 0 };
  for (let i = 0; i < count; i++) {
    const family = FAMILIES[i % FAMILIES.length] as keyof typeof next;
    const k = next[family]++;
    if (family === 'D') out.push({ dataType: `type-${k}`, kinds: ['page_added', 'page_replaced'] });
    else if (family === 'S') out.push({ sourcePrefix: `file:/repo-${k}/` });
    else if (family === 'C') out.push({ scopeId: `scope-${k}` });
    else out.push({ pageIdPrefix: `file:src/m${k}/` });
  }
  return out;
}

/** A deterministic 32-bit hash of (i, salt). */
function scramble(i: number, salt: number): number {
  let h = Math.imul(i ^ Math.imul(salt, 0x85ebca6b), 0x9e3779b1);
  h ^= h >>> 15;
  return Math.imul(h, 0x2c1b3c6d) >>> 0;
}

/**
 * Events for a mix of `subscriptions`: each draws its data type from twice the watched types and its
 * source from twice the watched sources (½ a match each), its scope and page directory from four
 * times the watched ones (¼ each): ~1.5 dispatches per event at every size. Every event is a new
 * page (the rate limiter limits nothing but is paid for on every event).
 */
export function events(count: number, offset = 0, subscriptions = 1000): PageChangeEvent[] {
  const { types, sources, scopes, prefixes } = space(subscriptions);
  const out: PageChangeEvent[] = [];
  for (let k = 0; k < count; k++) {
    const i = k + offset;
    // Each field from its own hash of i, so that any window of events has the mix's proportions.
    const dir = scramble(i, 1) % (4 * prefixes);
    const event: PageChangeEvent = {
      kind: i % 10 === 0 ? 'page_replaced' : 'page_added',
      pageId: `file:src/m${dir}/f${i}.ts`,
      sourceId: `file:/repo-${scramble(i, 2) % (2 * sources)}/pkg-${i % 8}`,
      dataType: `type-${scramble(i, 3) % (2 * types)}`,
      scopeId: `scope-${scramble(i, 4) % (4 * scopes)}`,
    };
    if (i % 10 === 0) event.related = [`file:src/m${dir}/old${i}.ts`];
    event.extra = { relativePath: `src/m${dir}/f${i}.ts`, value: i % 7 };
    event.ts = 1_795_312_028_434 + i;
    out.push(event);
  }
  // Through JSON, as events arriving from I/O would be: flat strings, not the rope a template
  // literal builds (which every reader of the string would otherwise pay to walk).
  return JSON.parse(JSON.stringify(out)) as PageChangeEvent[];
}
