/**
 * An HTTP server on a worker thread whose answers the main loop computes: each request is passed
 * to the main loop, and its answer served when it comes within the deadline. When the main loop
 * is busy longer (a large policy being compiled, a full resync), the worker serves the last
 * answer it had for that path instead, marked with its age (`X-Weir-Answer-Age-Ms`), and keeps
 * the fresh one for later. So `weir agent status` and /metrics answer within the deadline during
 * any compile, from state at most one compile old. The main loop primes the answers with
 * `refresh()` (at start and after changes), so even the first request during a compile has one.
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
  /** Computed on the main loop. */
  answer: () => Promise<Answer> | Answer;
}

export type Listen = { port: number; host: string } | { socketPath: string };

export interface OffLoopServer {
  /** The TCP port bound (for `{ port: 0 }`); undefined on a unix socket. */
  readonly port: number | undefined;
  /** Computes every route's answer now and hands it to the worker, to serve while the main loop is busy. */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

/** How long a request waits for the main loop before the last answer is served instead. */
export const DEFAULT_ANSWER_DEADLINE_MS = 250;

/** The worker (plain JavaScript, so it runs the same from dist/ and under ts-jest). */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createServer } = require('node:http');
const paths = new Set(workerData.paths);
const last = new Map();
const pending = new Map();
let nextId = 1;
const send = (res, a, ageMs) => {
  const headers = { 'Content-Type': a.contentType, 'Cache-Control': 'no-store' };
  if (ageMs !== undefined) headers['X-Weir-Answer-Age-Ms'] = String(ageMs);
  res.writeHead(a.code || 200, headers);
  res.end(a.body);
};
parentPort.on('message', (m) => {
  if (!m || !m.answer) return;
  if (!m.answer.code || m.answer.code === 200) last.set(m.path, { ...m.answer, at: Date.now() });
  const p = pending.get(m.id);
  if (!p) return;
  pending.delete(m.id);
  clearTimeout(p.timer);
  if (!p.served) send(p.res, m.answer);
});
const server = createServer((req, res) => {
  const path = new URL(req.url || '/', 'http://local').pathname;
  if (req.method !== 'GET' || !paths.has(path))
    return send(res, { code: 404, contentType: workerData.notFound.contentType, body: workerData.notFound.body });
  const id = nextId++;
  const p = { res, served: false, timer: undefined };
  pending.set(id, p);
  p.timer = setTimeout(() => {
    const a = last.get(path);
    if (!a || !pending.has(id)) return;
    p.served = true;
    send(res, a, Date.now() - a.at);
  }, workerData.deadlineMs);
  res.on('close', () => { if (!res.writableFinished) { clearTimeout(p.timer); p.served = true; } });
  parentPort.postMessage({ id, path });
});
server.on('error', (err) => parentPort.postMessage({ error: String(err.code === 'EADDRINUSE' ? 'EADDRINUSE' : err.message) }));
const l = workerData.listen;
const ready = () => parentPort.postMessage({ port: l.socketPath ? null : server.address().port });
if (l.socketPath) server.listen(l.socketPath, ready); else server.listen(l.port, l.host, ready);
`;

export async function startOffLoopServer(
  listen: Listen,
  routes: OffLoopRoute[],
  opts: { notFound: Answer; deadlineMs?: number; describe: string },
): Promise<OffLoopServer> {
  if ('socketPath' in listen) {
    mkdirSync(dirname(listen.socketPath), { recursive: true });
    rmSync(listen.socketPath, { force: true });
  }
  const byPath = new Map(routes.map((r) => [r.path, r]));
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: {
      listen,
      paths: [...byPath.keys()],
      deadlineMs: opts.deadlineMs ?? DEFAULT_ANSWER_DEADLINE_MS,
      notFound: opts.notFound,
    },
  });
  const answer = async (path: string): Promise<Answer> => {
    try {
      return await byPath.get(path)!.answer();
    } catch (err) {
      return { code: 500, contentType: 'text/plain; charset=utf-8', body: `error: ${(err as Error).message}\n` };
    }
  };
  const port = await new Promise<number | undefined>((resolve, reject) => {
    worker.once('message', (m: { port?: number | null; error?: string }) =>
      m.error !== undefined
        ? reject(new Error(m.error === 'EADDRINUSE' ? `${opts.describe}: the address is in use` : m.error))
        : resolve(m.port ?? undefined),
    );
    worker.once('error', reject);
  }).catch(async (err: unknown) => {
    await worker.terminate();
    throw err;
  });
  if ('socketPath' in listen) chmodSync(listen.socketPath, 0o600);
  worker.on('message', (m: { id?: number; path?: string }) => {
    if (m.id === undefined || m.path === undefined) return;
    void answer(m.path).then((a) => worker.postMessage({ id: m.id, path: m.path, answer: a }));
  });
  worker.unref();
  return {
    port,
    refresh: async () => {
      for (const path of byPath.keys()) worker.postMessage({ id: 0, path, answer: await answer(path) });
    },
    close: async () => {
      await worker.terminate();
      if ('socketPath' in listen) rmSync(listen.socketPath, { force: true });
    },
  };
}
