/**
 * A real git server on loopback for tests — the demo's `git http-backend` CGI shim on 127.0.0.1
 * (src/main/demo/git-http-server.ts) — and a fixture around it: a served bare repository, an author
 * clone to push from, and a second clone to watch.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startGitHttpServer } from '../../src/main/demo/git-http-server.js';
import { tempDir } from './helpers.js';

const run = promisify(execFile);

export interface GitServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  close(): Promise<void>;
}

export async function startGitServer(projectRoot: string): Promise<GitServer> {
  const server = await startGitHttpServer(projectRoot);
  return { url: `http://127.0.0.1:${server.port}`, close: () => server.close() };
}

/**
 * Runs git in `cwd` with a fixed identity; resolves with stdout. Asynchronous on purpose: the server
 * runs in this process, and a synchronous clone or push would block the loop that serves it.
 */
export async function gitCli(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('git', ['-c', 'user.name=Test', '-c', 'user.email=test@example.test', '-c', 'init.defaultBranch=main', ...args], { cwd });
  return stdout;
}

/** A served bare repository with one pushed commit (`files`), an author clone and a clone to watch. */
export async function gitFixture(servers: GitServer[], files: Record<string, string>): Promise<{ root: string; url: string; author: string; clone: string }> {
  const root = tempDir('converge-git-');
  const served = join(root, 'served');
  mkdirSync(served);
  await gitCli(served, 'init', '--bare', '-q', 'repo.git');
  const server = await startGitServer(served);
  servers.push(server);
  const url = `${server.url}/repo.git`;
  const author = join(root, 'author');
  mkdirSync(author);
  await gitCli(author, 'init', '-q');
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(author, path, '..'), { recursive: true });
    writeFileSync(join(author, path), content);
  }
  await gitCli(author, 'add', '.');
  await gitCli(author, 'commit', '-q', '-m', 'first');
  await gitCli(author, 'remote', 'add', 'origin', url);
  await gitCli(author, 'push', '-q', 'origin', 'main');
  await gitCli(root, 'clone', '-q', url, 'clone');
  return { root, url, author, clone: join(root, 'clone') };
}
