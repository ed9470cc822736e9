/**
 * The /metrics endpoint (port 9962 by default, as Cilium's agent).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { WeirMetrics } from './metrics.js';
import { serveOffLoop, type OffLoopHost } from '../offloop.js';

export const DEFAULT_METRICS_PORT = 9962;

export interface MetricsServer {
  /** "http://host:port/metrics" */
  url: string;
  port: number;
  close(): Promise<void>;
}

export function startMetricsServer(
  metrics: WeirMetrics,
  port = DEFAULT_METRICS_PORT,
  host = '0.0.0.0',
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      metrics
        .text()
        .then((body) => {
          res.writeHead(200, { 'Content-Type': metrics.registry.contentType });
          res.end(body);
        })
        .catch((e: unknown) => {
          res.writeHead(500, { 'Content-Type': 'text/plain' });
          res.end(`collecting metrics failed: ${e instanceof Error ? e.message : String(e)}\n`);
        });
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('ok\n');
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('weir serves /metrics and /healthz\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      // The system error's code stays on the error, so that a caller can tell "in use" apart.
      const err: NodeJS.ErrnoException = new Error(
        `cannot serve metrics on ${host}:${port}: ${e.code === 'EADDRINUSE' ? 'the port is in use; pick another with --metrics-port' : e.message}`,
        { cause: e },
      );
      if (e.code !== undefined) err.code = e.code;
      reject(err);
    });
    server.listen(port, host, () => {
      const bound = (server.address() as AddressInfo).port;
      const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
      resolve({
        url: `http://${shown}:${bound}/metrics`,
        port: bound,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      });
    });
  });
}

/**
 * /metrics served from the off-loop thread (agent/offloop.ts): the main loop renders the text; while
 * it is busy longer than the deadline (a large policy compiling), the last rendering is served,
 * so a scrape never waits on a compile. The node agent uses this one.
 */
export async function startMetricsServerOffLoop(
  metrics: WeirMetrics,
  port = DEFAULT_METRICS_PORT,
  host = '0.0.0.0',
  opts: { deadlineMs?: number; offLoop?: OffLoopHost } = {},
): Promise<MetricsServer & { refresh(): Promise<void> }> {
  const text = 'text/plain; charset=utf-8';
  const server = await serveOffLoop(
    opts.offLoop,
    { port, host },
    [
      {
        path: '/metrics',
        kind: 'ask',
        answer: async () => ({ contentType: metrics.registry.contentType, body: await metrics.text() }),
      },
      { path: '/healthz', kind: 'ask', answer: () => ({ contentType: text, body: 'ok\n' }) },
    ],
    {
      inUse: `cannot serve metrics on ${host}:${port}: the port is in use; pick another with --metrics-port`,
      notFound: { contentType: text, body: 'weir serves /metrics and /healthz\n' },
      ...(opts.deadlineMs !== undefined ? { deadlineMs: opts.deadlineMs } : {}),
    },
  );
  const bound = server.port!;
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return {
    url: `http://${shown}:${bound}/metrics`,
    port: bound,
    refresh: () => server.refresh(),
    close: () => server.close(),
  };
}
