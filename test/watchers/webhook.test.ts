import { createHmac } from 'node:crypto';
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createEngine, type Engine, WebhookEventBuilder, WebhookReceiver } from '../../src/main/index.js';
import { Collector, waitFor } from './helpers.js';

const pushPayload = {
  ref: 'refs/heads/main',
  after: 'abc123',
  repository: { clone_url: 'https://example.test/org/repo.git' },
  commits: [
    { added: ['docs/new.md', 'src/b.ts'], removed: [], modified: ['README.md'] },
    { added: ['src/a.ts'], removed: ['src/b.ts', 'old.txt'], modified: ['src/a.ts', 'README.md'] },
  ],
};

describe('WebhookEventBuilder.fromPayload', () => {
  it('per path removed > added > modified; added, replaced, invalidated, each sorted', () => {
    const events = WebhookEventBuilder.fromPayload('GitHub', pushPayload);
    expect(events.map((e) => `${e.kind} ${e.pageId}`)).toEqual([
      'page_added file:docs/new.md',
      'page_added file:src/a.ts',
      'page_replaced file:README.md',
      'page_invalidated file:old.txt',
      'page_invalidated file:src/b.ts',
    ]);
    expect(events[0]!.sourceId).toBe('git:https://example.test/org/repo.git@abc123');
    expect(events[2]!.related).toEqual(['file:README.md']);
    expect(events[0]!.extra).toMatchObject({ relativePath: 'docs/new.md', sha: 'abc123', ref: 'refs/heads/main' });
  });

  it('reads GitLab (checkout_sha, project.git_http_url), Gitea and a generic shape; refuses unknown providers', () => {
    const gitlab = WebhookEventBuilder.fromPayload('gitlab', {
      after: 'aaa',
      checkout_sha: 'bbb',
      project: { git_http_url: 'http://gl.test/g/p.git' },
      commits: [{ added: ['x'], modified: [], removed: [] }],
    });
    expect(gitlab[0]!.sourceId).toBe('git:http://gl.test/g/p.git@bbb');
    const gitea = WebhookEventBuilder.fromPayload('gitea', { after: 'c', repository: { clone_url: 'http://gt/r.git' }, commits: [{ modified: ['m'] }] });
    expect(gitea.map((e) => e.kind)).toEqual(['page_replaced']);
    const generic = WebhookEventBuilder.fromPayload('generic', { sha: 'd', url: 'u', added: ['a'], removed: ['r'] });
    expect(generic.map((e) => `${e.kind} ${e.pageId} ${e.sourceId}`)).toEqual(['page_added file:a git:u@d', 'page_invalidated file:r git:u@d']);
    expect(() => WebhookEventBuilder.fromPayload('bitbucket', {})).toThrow(expect.objectContaining({ code: 'CONVERGE_VALIDATION' }));
  });
});

interface Reply {
  status: number;
  body: string;
}

function post(url: string, body: string | Buffer, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString() }));
    });
    // The server may answer 413 and close before it has read everything: that is not a failure here.
    req.on('error', (error: NodeJS.ErrnoException) => (error.code === 'EPIPE' || error.code === 'ECONNRESET' ? undefined : reject(error)));
    req.end(body);
  });
}

const sign = (secret: string, body: string): string => createHmac('sha256', secret).update(body).digest('hex');

describe('WebhookReceiver', () => {
  const receivers: WebhookReceiver[] = [];
  const engines: Engine[] = [];
  afterEach(async () => {
    await Promise.all(engines.splice(0).map((e) => e.close()));
    await Promise.all(receivers.splice(0).map((r) => r.close()));
  });

  async function setup() {
    const receiver = new WebhookReceiver({ bodyLimit: 64 * 1024 });
    receivers.push(receiver);
    const github = receiver.route('/hooks/github', { provider: 'github', secret: 's3cret' });
    const gitea = receiver.route('/hooks/gitea', { provider: 'gitea', secret: 'tea' });
    const gitlab = receiver.route('/hooks/gitlab', { provider: 'gitlab', secret: 'tok' });
    const base = await receiver.listen();
    const engine = await createEngine();
    engines.push(engine);
    const seen = new Collector();
    await engine.subscribe({ handler: seen.push });
    await engine.mapSource(github);
    await engine.mapSource(gitea);
    await engine.mapSource(gitlab);
    return { base, engine, seen };
  }

  it('binds 127.0.0.1 and delivers a correctly signed GitHub push to subscribers', async () => {
    const { base, seen } = await setup();
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const body = JSON.stringify(pushPayload);
    const res = await post(`${base}/hooks/github`, body, { 'x-hub-signature-256': `sha256=${sign('s3cret', body)}`, 'x-github-event': 'push', 'x-github-delivery': 'd-1' });
    expect(res.status).toBe(202);
    await waitFor(() => seen.events.length === 5, 'the five events');
    expect(seen.has('file:README.md', 'page_replaced')).toBe(true);
  });

  it('verifies Gitea signatures and GitLab tokens', async () => {
    const { base, seen } = await setup();
    const body = JSON.stringify({ after: 'x', repository: { clone_url: 'r' }, commits: [{ added: ['gitea.txt'] }] });
    expect((await post(`${base}/hooks/gitea`, body, { 'x-gitea-signature': sign('tea', body) })).status).toBe(202);
    expect((await post(`${base}/hooks/gitea`, body, { 'x-gitea-signature': sign('nope', body) })).status).toBe(401);
    const lab = JSON.stringify({ checkout_sha: 'y', project: { git_http_url: 'g' }, commits: [{ added: ['gitlab.txt'] }] });
    expect((await post(`${base}/hooks/gitlab`, lab, { 'x-gitlab-token': 'tok', 'x-gitlab-event': 'Push Hook' })).status).toBe(202);
    expect((await post(`${base}/hooks/gitlab`, lab, { 'x-gitlab-token': 'tok!' })).status).toBe(401);
    await waitFor(() => seen.has('file:gitea.txt') && seen.has('file:gitlab.txt'), 'both pushes');
  });

  it('answers 401 unsigned / wrongly signed, 413 oversized, 400 malformed, 404 unknown route, 405 GET — and keeps serving', async () => {
    const { base, seen } = await setup();
    const body = JSON.stringify(pushPayload);
    expect((await post(`${base}/hooks/github`, body)).status).toBe(401);
    expect((await post(`${base}/hooks/github`, body, { 'x-hub-signature-256': `sha256=${sign('wrong', body)}` })).status).toBe(401);
    expect((await post(`${base}/hooks/github`, body, { 'x-hub-signature-256': 'sha256=zz' })).status).toBe(401);
    const huge = JSON.stringify({ pad: 'x'.repeat(100 * 1024) });
    expect((await post(`${base}/hooks/github`, huge, { 'x-hub-signature-256': `sha256=${sign('s3cret', huge)}` })).status).toBe(413);
    const bad = '{"after": ';
    expect((await post(`${base}/hooks/github`, bad, { 'x-hub-signature-256': `sha256=${sign('s3cret', bad)}` })).status).toBe(400);
    expect((await post(`${base}/nowhere`, body)).status).toBe(404);
    const get = await new Promise<number>((resolve) => request(`${base}/hooks/github`, (res) => resolve(res.statusCode!)).end());
    expect(get).toBe(405);
    expect(seen.events).toEqual([]);
    // Still alive after all that.
    const ok = await post(`${base}/hooks/github`, body, { 'x-hub-signature-256': `sha256=${sign('s3cret', body)}` });
    expect(ok.status).toBe(202);
  });

  it('accepts a replayed delivery id once', async () => {
    const { base, seen, engine } = await setup();
    const body = JSON.stringify({ after: 'r1', repository: { clone_url: 'r' }, commits: [{ added: ['once.txt'] }] });
    const headers = { 'x-hub-signature-256': `sha256=${sign('s3cret', body)}`, 'x-github-delivery': 'same-id' };
    expect((await post(`${base}/hooks/github`, body, headers)).status).toBe(202);
    const replay = await post(`${base}/hooks/github`, body, headers);
    expect(replay.status).toBe(202);
    expect(JSON.parse(replay.body)).toMatchObject({ duplicate: 'same-id', events: 0 });
    await waitFor(() => seen.events.length >= 1, 'the first delivery');
    // Both requests were answered after their events (if any) were handed over: settling shows all.
    await engine.waitForQuiescence();
    expect(seen.events.filter((e) => e.pageId === 'file:once.txt')).toHaveLength(1);
  });

  it('ignores non-push events (ping) and answers 503 for a route nobody maps', async () => {
    const receiver = new WebhookReceiver();
    receivers.push(receiver);
    receiver.route('/hooks/lonely', { provider: 'generic' });
    const base = await receiver.listen();
    expect((await post(`${base}/hooks/lonely`, '{}', { 'x-github-event': 'ping' })).status).toBe(202);
    expect((await post(`${base}/hooks/lonely`, JSON.stringify({ added: ['a'] }))).status).toBe(503);
  });
});
