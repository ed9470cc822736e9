/**
 * /healthz and /readyz for kubelet probes, and nothing else: this port listens on the node
 * network, so it tells nobody which pods and policies the node has (that is `weir agent status`,
 * on the local control socket, agent/node/status.ts).
 * /healthz: the process serves and its event loop turns. /readyz: the agent enforces (first full
 * sync realized in the datapath) with the API server's permission to watch what it needs.
 * The node agent serves them from a worker thread (startHealthServerOffLoop), so a long compile on
 * the main loop never makes a probe wait; the lab and tests may use the in-loop startHealthServer.
 */
import { createServer, type Server } from 'node:http';
import { Worker } from 'node:worker_threads';

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
 * The worker's code (plain JavaScript, so it runs the same from dist/ and under ts-jest): an HTTP
 * server on its own event loop answering from the last state the main loop published and from
 * the main loop's heartbeat, so probes are answered in microseconds however long the main loop is
 * busy, and a main loop stuck longer than the stall limit fails /healthz.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createServer } = require('node:http');
const beat = new Float64Array(workerData.beat);
let state = { healthz: { ok: false, reason: 'starting' }, readyz: { ok: false, reason: 'starting' } };
parentPort.on('message', (m) => { if (m && m.state) state = m.state; });
const server = createServer((req, res) => {
  const path = new URL(req.url || '/', 'http://local').pathname;
  const send = (code, body) => {
    res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(body);
  };
  if (path !== '/healthz' && path !== '/readyz') return send(404, 'not found: try /healthz or /readyz\\n');
  const stalled = Date.now() - beat[0];
  let c = path === '/healthz' ? state.healthz : state.readyz;
  if (stalled > workerData.stallLimitMs)
    c = { ok: false, reason: 'the agent has not turned its event loop for ' + Math.round(stalled / 1000) + ' s' };
  send(c.ok ? 200 : 503, c.ok ? 'ok\\n' : 'not ready: ' + (c.reason || 'unknown') + '\\n');
});
server.on('error', (err) => parentPort.postMessage({ error: err.code === 'EADDRINUSE'
  ? 'health port ' + workerData.host + ':' + workerData.port + ' is in use: pass --health-port with a free port'
  : String(err.message) }));
server.listen(workerData.port, workerData.host, () => parentPort.postMessage({ port: server.address().port }));
`;

/**
 * /healthz and /readyz served from a worker thread: the main loop publishes its checks every
 * `publishMs` (and its heartbeat with them), the worker answers probes at once even while the
 * main loop compiles. A main loop that has not published for `stallLimitMs` fails both.
 */
export async function startHealthServerOffLoop(
  src: HealthSource,
  port: number,
  host = '0.0.0.0',
  opts: { publishMs?: number; stallLimitMs?: number } = {},
): Promise<HealthServer> {
  const beatBuffer = new SharedArrayBuffer(8);
  const beat = new Float64Array(beatBuffer);
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { beat: beatBuffer, port, host, stallLimitMs: opts.stallLimitMs ?? DEFAULT_STALL_LIMIT_MS },
  });
  const publish = (): void => {
    let state: { healthz: Check; readyz: Check };
    try {
      state = { healthz: src.healthz(), readyz: src.readyz() };
    } catch (err) {
      const c = { ok: false, reason: `error: ${err instanceof Error ? err.message : String(err)}` };
      state = { healthz: c, readyz: c };
    }
    beat[0] = Date.now();
    worker.postMessage({ state });
  };
  publish();
  const bound = await new Promise<number>((resolve, reject) => {
    worker.once('message', (m: { port?: number; error?: string }) =>
      m.port !== undefined ? resolve(m.port) : reject(new Error(m.error ?? 'health server failed')),
    );
    worker.once('error', reject);
  });
  const timer = setInterval(publish, opts.publishMs ?? 200);
  timer.unref();
  worker.unref();
  return {
    port: bound,
    refresh: publish,
    close: async () => {
      clearInterval(timer);
      await worker.terminate();
    },
  };
}
