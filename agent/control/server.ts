/**
 * The agent's local control API: HTTP on a unix socket (only root on the node can reach it).
 * Handlers return JSON; a streaming handler may send progress lines first (NDJSON:
 * `{"progress": "..."}` lines, then one `{"result": ...}` or `{"error": "..."}` line).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';

export type Handler = (body: unknown, progress: (line: string) => void) => Promise<unknown>;

export interface Route {
  method: 'GET' | 'POST';
  path: string;
  handler: Handler;
}

const MAX_BODY = 64 << 20;

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) reject(new Error('request body too large'));
      else chunks.push(c);
    });
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(text === '' ? undefined : (JSON.parse(text) as unknown));
      } catch {
        reject(new Error('request body is not JSON'));
      }
    });
    req.on('error', reject);
  });
}

export async function serveControl(socketPath: string, routes: Route[]): Promise<Server> {
  mkdirSync(dirname(socketPath), { recursive: true });
  rmSync(socketPath, { force: true });
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const route = routes.find((r) => r.method === req.method && r.path === (req.url ?? '').split('?')[0]);
    if (!route) {
      res.writeHead(404, { 'content-type': 'application/x-ndjson' });
      res.end(
        `${JSON.stringify({ error: `no such endpoint ${req.method} ${req.url}; known: ${routes.map((r) => `${r.method} ${r.path}`).join(', ')}` })}\n`,
      );
      return;
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    const progress = (line: string): void => {
      res.write(`${JSON.stringify({ progress: line })}\n`);
    };
    readBody(req)
      .then((body) => route.handler(body, progress))
      .then(
        (result) => res.end(`${JSON.stringify({ result })}\n`),
        (err: unknown) => res.end(`${JSON.stringify({ error: err instanceof Error ? err.message : String(err) })}\n`),
      );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o600);
  return server;
}
