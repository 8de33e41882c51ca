/**
 * A loopback smart-HTTP git server: `git http-backend` behind a node:http CGI shim. The demo pushes
 * to it and `GitRemoteWatcher` fetches from it, so the remote path is exercised for real — real
 * packs over real HTTP — without any service outside this process. Needs the `git` binary.
 */
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A running server; `url(name)` is the clone URL of the bare repository `<root>/<name>`. */
export interface GitHttpServer {
  readonly port: number;
  url(repository: string): string;
  close(): Promise<void>;
}

/** Serves the bare repositories under `root` on 127.0.0.1 (fetch and push). */
export async function startGitHttpServer(root: string, { host = '127.0.0.1' }: { host?: string } = {}): Promise<GitHttpServer> {
  const server: Server = createServer((req, res) => serve(root, req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  server.unref();
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: (repository) => `http://${host}:${port}/${repository}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function serve(root: string, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://loopback');
  const child = spawn('git', ['http-backend'], {
    env: {
      ...process.env,
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: '1',
      // http-backend allows receive-pack (push) only for an authenticated user.
      REMOTE_USER: 'converge',
      REMOTE_ADDR: '127.0.0.1',
      REQUEST_METHOD: req.method ?? 'GET',
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.slice(1),
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      CONTENT_LENGTH: req.headers['content-length'] ?? '',
      HTTP_CONTENT_ENCODING: req.headers['content-encoding'] ?? '',
      GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
    },
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  req.pipe(child.stdin);
  let head = Buffer.alloc(0);
  let headersDone = false;
  child.stdout.on('data', (chunk: Buffer) => {
    if (headersDone) {
      res.write(chunk);
      return;
    }
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end === -1) return;
    headersDone = true;
    let status = 200;
    for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon === -1) continue;
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10) || 500;
      else res.setHeader(name, value);
    }
    res.statusCode = status;
    res.write(head.subarray(end + 4));
  });
  child.on('error', () => {
    if (!res.headersSent) res.statusCode = 500;
    res.end();
  });
  child.on('close', () => {
    if (!headersDone && !res.headersSent) res.statusCode = 502;
    res.end();
  });
}
