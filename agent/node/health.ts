/**
 * /healthz and /readyz for kubelet probes, and nothing else: this port listens on the node
 * network, so it tells nobody which pods and policies the node has (that is `weir agent status`,
 * on the local control socket, agent/node/status.ts).
 * /healthz: the process serves and its event loop turns. /readyz: the agent enforces (first full
 * sync realized in the datapath) with the API server's permission to watch what it needs.
 * The node agent serves them from the off-loop thread (startHealthServerOffLoop), so a long compile on
 * the main loop never makes a probe wait; the lab and tests may use the in-loop startHealthServer.
 */
import { createServer, type Server } from 'node:http';
import { serveOffLoop, type Answer, type OffLoopHost } from '../offloop.js';

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
  /** Publishes the checks now (a server that answers from published state; otherwise a no-op). */
  refresh(): void;
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
    refresh: () => undefined,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The main loop may stall this long (a compile, a full resync) before /healthz says it is stuck. */
export const DEFAULT_STALL_LIMIT_MS = 30_000;

/**
 * /healthz and /readyz served from the off-loop thread (agent/offloop.ts, shared with status and
 * metrics when `offLoop` is given): the main loop publishes its checks every `publishMs`, the
 * thread answers probes at once from the last ones even while the main loop compiles. A main
 * loop that has not published for `stallLimitMs` fails both.
 */
export async function startHealthServerOffLoop(
  src: HealthSource,
  port: number,
  host = '0.0.0.0',
  opts: { publishMs?: number; stallLimitMs?: number; offLoop?: OffLoopHost } = {},
): Promise<HealthServer> {
  const check = (c: () => Check): Answer => {
    let r: Check;
    try {
      r = c();
    } catch (err) {
      r = { ok: false, reason: `error: ${err instanceof Error ? err.message : String(err)}` };
    }
    return {
      code: r.ok ? 200 : 503,
      contentType: 'text/plain; charset=utf-8',
      body: r.ok ? 'ok\n' : `not ready: ${r.reason ?? 'unknown'}\n`,
    };
  };
  const server = await serveOffLoop(
    opts.offLoop,
    { port, host },
    [
      { path: '/healthz', kind: 'published', answer: () => check(() => src.healthz()) },
      { path: '/readyz', kind: 'published', answer: () => check(() => src.readyz()) },
    ],
    {
      inUse: `health port ${host}:${port} is in use: pass --health-port with a free port`,
      notFound: { contentType: 'text/plain; charset=utf-8', body: 'not found: try /healthz or /readyz\n' },
      stallLimitMs: opts.stallLimitMs ?? DEFAULT_STALL_LIMIT_MS,
      stalledBody: 'not ready: the agent has not turned its event loop for {s} s\n',
    },
  );
  const publish = (): void => void server.refresh();
  publish();
  const timer = setInterval(publish, opts.publishMs ?? 200);
  timer.unref();
  return {
    port: server.port!,
    refresh: publish,
    close: async () => {
      clearInterval(timer);
      await server.close();
    },
  };
}
