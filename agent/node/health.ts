/**
 * /healthz and /readyz for kubelet probes, and nothing else: this port listens on the node
 * network, so it tells nobody which pods and policies the node has (that is `weir agent status`,
 * on the local control socket, agent/node/status.ts).
 * /healthz: the process serves and its event loop turns. /readyz: the agent enforces (first full
 * sync realized in the datapath) with the API server's permission to watch what it needs.
 */
import { createServer, type Server } from 'node:http';

export interface Check {
  ok: boolean;
  /** Why not, in words a user can act on. */
  reason?: string;
}

export interface HealthSource {
  healthz(): Check;
  readyz(): Check;
}

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startHealthServer(src: HealthSource, port: number, host = '0.0.0.0'): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://local').pathname;
    const send = (code: number, type: string, body: string): void => {
      res.writeHead(code, { 'Content-Type': type, 'Cache-Control': 'no-store' });
      res.end(body);
    };
    try {
      if (path === '/healthz' || path === '/readyz') {
        const c = path === '/healthz' ? src.healthz() : src.readyz();
        send(c.ok ? 200 : 503, 'text/plain; charset=utf-8', c.ok ? 'ok\n' : `not ready: ${c.reason ?? 'unknown'}\n`);
      } else {
        send(404, 'text/plain; charset=utf-8', 'not found: try /healthz or /readyz\n');
      }
    } catch (err) {
      send(500, 'text/plain; charset=utf-8', `error: ${err instanceof Error ? err.message : String(err)}\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new Error(`health port ${host}:${port} is in use: pass --health-port with a free port`)
          : err,
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  return {
    port: addr && typeof addr === 'object' ? addr.port : port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
