/**
 * HTTP servers on one worker thread, so they answer while the main loop is busy (a large policy
 * compiling, a full resync). One thread serves them all: each worker thread costs a V8 isolate
 * (about 8-10 MB of RSS), so the node agent's health, status and metrics share one.
 *
 * Two kinds of route:
 * - `published`: answered at once from the last answer the main loop published (health checks,
 *   published every 200 ms); when the main loop has published nothing for the server's stall
 *   limit, the answer is a 503 saying so.
 * - `ask`: the request is passed to the main loop and its answer served if it comes within the
 *   deadline; otherwise the last answer the worker had for that path is served, with its age in
 *   `X-Weir-Answer-Age-Ms`, and the fresh one kept for later (status, metrics). One question per
 *   path is outstanding at a time: requests meanwhile share its answer, so clients that poll a
 *   busy main loop do not pile up work for it (status counts the kernel maps' entries). The main loop
 *   primes these with `refresh()`, so even the first request during a compile has an answer.
 */
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { Worker } from 'node:worker_threads';

export interface Answer {
  code?: number;
  contentType: string;
  body: string;
}

export interface OffLoopRoute {
  path: string;
  kind: 'published' | 'ask';
  /** Computed on the main loop. */
  answer: () => Promise<Answer> | Answer;
}

export type Listen = { port: number; host: string } | { socketPath: string };

export interface OffLoopServer {
  /** The TCP port bound (for `{ port: 0 }`); undefined on a unix socket. */
  readonly port: number | undefined;
  /** Computes every route's answer now and hands it to the worker. */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

export interface ServeOptions {
  notFound: Answer;
  /** The error when the address is in use, in words a user can act on. */
  inUse: string;
  /** `ask` routes: how long a request waits for the main loop (default 250 ms). */
  deadlineMs?: number;
  /** `published` routes: 503 once nothing was published for this long (default: never). */
  stallLimitMs?: number;
  /** The message of that 503, given the seconds since the last publication. */
  stalledBody?: string;
}

/** How long a request waits for the main loop before the last answer is served instead. */
export const DEFAULT_ANSWER_DEADLINE_MS = 250;

/** The worker (plain JavaScript, so it runs the same from dist/ and under ts-jest). */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createServer } = require('node:http');
const servers = new Map();
let nextId = 1;
const send = (res, a, ageMs) => {
  if (res.writableEnded) return;
  const headers = { 'Content-Type': a.contentType, 'Cache-Control': 'no-store' };
  if (ageMs !== undefined) headers['X-Weir-Answer-Age-Ms'] = String(ageMs);
  res.writeHead(a.code || 200, headers);
  res.end(a.body);
};
const listen = (m) => {
  const s = { ...m, last: new Map(), pending: new Map(), asking: new Map(), publishedAt: Date.now() };
  s.http = createServer((req, res) => {
    const path = new URL(req.url || '/', 'http://local').pathname;
    const kind = req.method === 'GET' ? s.routes[path] : undefined;
    if (!kind) return send(res, { ...s.notFound, code: 404 });
    if (kind === 'published') {
      const stalled = Date.now() - s.publishedAt;
      if (s.stallLimitMs && stalled > s.stallLimitMs)
        return send(res, { code: 503, contentType: 'text/plain; charset=utf-8',
          body: s.stalledBody.replace('{s}', String(Math.round(stalled / 1000))) });
      const a = s.last.get(path);
      return send(res, a || { code: 503, contentType: 'text/plain; charset=utf-8', body: 'starting\\n' });
    }
    // One question per path at a time: requests that come while the main loop computes an
    // answer wait for that answer (or the deadline), so a busy main loop never gets a backlog.
    const timer = setTimeout(() => {
      const a = s.last.get(path);
      if (a) send(res, a, Date.now() - a.at);
    }, s.deadlineMs);
    const waiter = { res, timer };
    const asked = s.asking.get(path);
    if (asked !== undefined) return s.pending.get(asked).push(waiter);
    const id = nextId++;
    s.asking.set(path, id);
    s.pending.set(id, [waiter]);
    parentPort.postMessage({ op: 'ask', server: s.server, id, path });
  });
  s.http.on('error', (err) => parentPort.postMessage({ op: 'listening', server: s.server,
    error: err.code === 'EADDRINUSE' ? 'EADDRINUSE' : String(err.message) }));
  const ready = () => parentPort.postMessage({ op: 'listening', server: s.server,
    port: s.listen.socketPath ? null : s.http.address().port });
  if (s.listen.socketPath) s.http.listen(s.listen.socketPath, ready); else s.http.listen(s.listen.port, s.listen.host, ready);
  servers.set(s.server, s);
};
parentPort.on('message', (m) => {
  if (m.op === 'listen') return listen(m);
  const s = servers.get(m.server);
  if (!s) return;
  if (m.op === 'close') {
    servers.delete(m.server);
    s.http.closeAllConnections();
    return s.http.close(() => parentPort.postMessage({ op: 'closed', server: m.server }));
  }
  if (m.op !== 'answer') return;
  if (m.id === 0) s.publishedAt = Date.now();
  if (!m.answer.code || m.answer.code === 200 || s.routes[m.path] === 'published')
    s.last.set(m.path, { ...m.answer, at: Date.now() });
  const waiters = s.pending.get(m.id);
  if (!waiters) return;
  s.pending.delete(m.id);
  if (s.asking.get(m.path) === m.id) s.asking.delete(m.path);
  for (const w of waiters) {
    clearTimeout(w.timer);
    send(w.res, m.answer);
  }
});
`;

/** The worker thread and the servers on it. */
export class OffLoopHost {
  private readonly worker: Worker;
  private nextServer = 1;
  private readonly handlers = new Map<number, (m: { op: string; id?: number; path?: string }) => void>();

  constructor() {
    this.worker = new Worker(WORKER_SOURCE, { eval: true });
    this.worker.unref();
    this.worker.on('message', (m: { op: string; server: number }) => this.handlers.get(m.server)?.(m));
  }

  /** Starts one HTTP server on the worker. */
  async serve(listen: Listen, routes: OffLoopRoute[], opts: ServeOptions): Promise<OffLoopServer> {
    if ('socketPath' in listen) {
      mkdirSync(dirname(listen.socketPath), { recursive: true });
      rmSync(listen.socketPath, { force: true });
    }
    const server = this.nextServer++;
    const byPath = new Map(routes.map((r) => [r.path, r]));
    const answer = async (path: string): Promise<Answer> => {
      try {
        return await byPath.get(path)!.answer();
      } catch (err) {
        return { code: 500, contentType: 'text/plain; charset=utf-8', body: `error: ${(err as Error).message}\n` };
      }
    };
    const post = (id: number, path: string, a: Answer): void =>
      this.worker.postMessage({ op: 'answer', server, id, path, answer: a });
    let onListening: (m: { port?: number | null; error?: string }) => void = () => undefined;
    let onClosed: () => void = () => undefined;
    this.handlers.set(server, (m) => {
      if (m.op === 'ask') void answer(m.path!).then((a) => post(m.id!, m.path!, a));
      else if (m.op === 'listening') onListening(m as { port?: number | null; error?: string });
      else if (m.op === 'closed') onClosed();
    });
    const port = new Promise<number | undefined>((resolve, reject) => {
      onListening = (m) =>
        m.error !== undefined
          ? reject(new Error(m.error === 'EADDRINUSE' ? opts.inUse : m.error))
          : resolve(m.port ?? undefined);
    });
    this.worker.postMessage({
      op: 'listen',
      server,
      listen,
      routes: Object.fromEntries(routes.map((r) => [r.path, r.kind])),
      notFound: opts.notFound,
      deadlineMs: opts.deadlineMs ?? DEFAULT_ANSWER_DEADLINE_MS,
      stallLimitMs: opts.stallLimitMs ?? 0,
      stalledBody: opts.stalledBody ?? '',
    });
    let bound: number | undefined;
    try {
      bound = await port;
    } catch (err) {
      this.handlers.delete(server);
      throw err;
    }
    if ('socketPath' in listen) chmodSync(listen.socketPath, 0o600);
    return {
      port: bound,
      refresh: async () => {
        for (const path of byPath.keys()) post(0, path, await answer(path));
      },
      close: async () => {
        await new Promise<void>((resolve) => {
          onClosed = resolve;
          this.worker.postMessage({ op: 'close', server });
        });
        this.handlers.delete(server);
        if ('socketPath' in listen) rmSync(listen.socketPath, { force: true });
      },
    };
  }

  /** Ends the worker (its servers with it). */
  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/**
 * One server on a host of its own when none is given (the host ends with the server), or on
 * the given host (shared with other servers).
 */
export async function serveOffLoop(
  host: OffLoopHost | undefined,
  listen: Listen,
  routes: OffLoopRoute[],
  opts: ServeOptions,
): Promise<OffLoopServer> {
  if (host) return host.serve(listen, routes, opts);
  const own = new OffLoopHost();
  try {
    const s = await own.serve(listen, routes, opts);
    return {
      port: s.port,
      refresh: () => s.refresh(),
      close: async () => {
        await s.close();
        await own.close();
      },
    };
  } catch (err) {
    await own.close();
    throw err;
  }
}
