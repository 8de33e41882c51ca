/**
 * `WebhookEventBuilder.fromPayload` (DESIGN §4): a git push webhook payload (GitHub, GitLab, Gitea, or
 * a generic shape) → page-change events for the files it touched. Per path the strongest change of
 * all the push's commits wins (removed > added > modified); events come out as added, then
 * replaced, then invalidated, each sorted by path. sourceId `git:<url>@<sha>`, page id
 * `file:<path>` (the same ids a LocalFsWatcher on a checkout of the repository uses).
 */
import { ValidationError } from '../shared/errors.js';
import type { PageChangeEvent } from '../shared/events.js';

/** Providers `fromPayload` understands (case-insensitive). */
export const WEBHOOK_PROVIDERS = ['github', 'gitlab', 'gitea', 'generic'] as const;
export type WebhookProvider = (typeof WEBHOOK_PROVIDERS)[number];

/** Options of {@link WebhookEventBuilder.fromPayload}. */
export interface WebhookEventOptions {
  /** `dataType` of the events. Default `design_monorepo_file`. */
  dataType?: string;
  /** Repository URL to use when the payload has none. */
  url?: string;
}

interface CommitLike {
  added?: unknown;
  removed?: unknown;
  modified?: unknown;
}

type Change = 'added' | 'modified' | 'removed';
const STRENGTH: Record<Change, number> = { modified: 1, added: 2, removed: 3 };

/** Validates a provider name. */
export function parseProvider(value: unknown, field = 'provider'): WebhookProvider {
  const name = typeof value === 'string' ? value.toLowerCase() : '';
  if (!(WEBHOOK_PROVIDERS as readonly string[]).includes(name)) {
    throw new ValidationError(field, `must be one of ${WEBHOOK_PROVIDERS.join(', ')} (got ${JSON.stringify(value)})`);
  }
  return name as WebhookProvider;
}

function obj(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

function paths(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((p): p is string => typeof p === 'string' && p.length > 0) : [];
}

function repositoryUrl(provider: WebhookProvider, payload: Record<string, unknown>): string | undefined {
  const repo = obj(payload['repository']);
  const project = obj(payload['project']);
  switch (provider) {
    case 'gitlab':
      return str(project?.['git_http_url']) ?? str(repo?.['git_http_url']) ?? str(project?.['web_url']) ?? str(repo?.['homepage']) ?? str(repo?.['url']);
    case 'github':
    case 'gitea':
      return str(repo?.['clone_url']) ?? str(repo?.['html_url']) ?? str(repo?.['url']);
    case 'generic':
      return str(payload['url']) ?? str(repo?.['clone_url']) ?? str(repo?.['url']);
  }
}

export const WebhookEventBuilder = {
  /** Translates a push payload into events. Unknown provider or a payload that is not an object → ValidationError. */
  fromPayload(provider: string, payload: unknown, options: WebhookEventOptions = {}): PageChangeEvent[] {
    const name = parseProvider(provider);
    const body = obj(payload);
    if (body === undefined) throw new ValidationError('payload', 'must be a JSON object');
    const sha = (name === 'gitlab' ? str(body['checkout_sha']) ?? str(body['after']) : str(body['after'])) ?? str(body['sha']) ?? 'unknown';
    const url = repositoryUrl(name, body) ?? options.url ?? 'unknown';
    const sourceId = `git:${url}@${sha}`;
    const commits: CommitLike[] = Array.isArray(body['commits']) ? (body['commits'] as unknown[]).map((c) => obj(c) ?? {}) : [];
    // The generic shape may list the changes at the top level instead of per commit.
    if (name === 'generic' && (body['added'] !== undefined || body['removed'] !== undefined || body['modified'] !== undefined)) commits.push(body);
    const strongest = new Map<string, Change>();
    const note = (list: unknown, change: Change): void => {
      for (const path of paths(list)) {
        const prev = strongest.get(path);
        if (prev === undefined || STRENGTH[change] > STRENGTH[prev]) strongest.set(path, change);
      }
    };
    for (const commit of commits) {
      note(commit.added, 'added');
      note(commit.removed, 'removed');
      note(commit.modified, 'modified');
    }
    const ref = str(body['ref']);
    const dataType = options.dataType ?? 'design_monorepo_file';
    const ts = Date.now();
    const byKind: Record<Change, string[]> = { added: [], modified: [], removed: [] };
    for (const [path, change] of strongest) byKind[change].push(path);
    const events: PageChangeEvent[] = [];
    const extra = (path: string): Record<string, unknown> => (ref === undefined ? { relativePath: path, sha } : { relativePath: path, sha, ref });
    for (const path of byKind.added.sort()) events.push({ kind: 'page_added', pageId: `file:${path}`, sourceId, dataType, extra: extra(path), ts });
    for (const path of byKind.modified.sort()) {
      events.push({ kind: 'page_replaced', pageId: `file:${path}`, related: [`file:${path}`], sourceId, dataType, extra: extra(path), ts });
    }
    for (const path of byKind.removed.sort()) {
      events.push({ kind: 'page_invalidated', pageId: `file:${path}`, reason: 'removed upstream', sourceId, dataType, extra: extra(path), ts });
    }
    return events;
  },
} as const;
