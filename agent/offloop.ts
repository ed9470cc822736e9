/**
 * HTTP servers on one native thread (the addon's offloop.c), so they answer while the main loop is
 * busy (a large policy compiling, a full resync). One thread serves them all (the node agent's
 * health, status and metrics); it runs no JavaScript, so it costs no V8 isolate (a worker thread's
 * costs about 10 MiB of RSS). It serves HTTP/1.1 GET (keep-alive, `Connection: close`); any other
 * method or path gets the server's 404.
 *
 * Two kinds of route:
 * - `published`: answered at once from the last answer the main loop published (health checks,
 *   published every 200 ms); when the main loop has published nothing for the server's stall
 *   limit, the answer is a 503 saying so.
 * - `ask`: the request is passed to the main loop and its answer served if it comes within the
 *   deadline; otherwise the last answer the thread had for that path is served, with its age in
 *   `X-Weir-Answer-Age-Ms`, and the fresh one kept for later (status, metrics). One question per
 *   path is outstanding at a time: requests meanwhile share its answer, so clients that poll a
 *   busy main loop do not pile up work for it (status counts the kernel maps' entries). The main loop
 *   primes these with `refresh()`, so even the first request during a compile has an answer.
 */
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

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
  /** Computes every route's answer now and hands it to the thread. */
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

interface OffLoopAddon {
  host(onAsk: (server: number, id: number, path: string) => void): object;
  listen(
    host: object,
    tcpHost: string | null,
    port: number,
    socketPath: string | null,
    paths: string[],
    kinds: number[],
    notFoundCode: number,
    notFoundType: string,
    notFoundBody: string,
    deadlineMs: number,
    stallLimitMs: number,
    stalledBody: string,
  ): [number, number];
  answer(host: object, server: number, id: number, path: string, code: number, contentType: string, body: string): void;
  closeServer(host: object, server: number): void;
  closeHost(host: object): void;
}

let addon: OffLoopAddon | undefined;
const loadAddon = (): OffLoopAddon =>
  (addon ??= createRequire(import.meta.url)('@weir/ringbuf/offloop.cjs') as OffLoopAddon);

/** The native thread (the addon's offloop.c) and the servers on it. */
export class OffLoopHost {
  private readonly native = loadAddon();
  private readonly host: object;
  private readonly handlers = new Map<number, (id: number, path: string) => void>();
  private closed = false;

  constructor() {
    this.host = this.native.host((server, id, path) => this.handlers.get(server)?.(id, path));
  }

  /** Starts one HTTP server on the thread. */
  async serve(listen: Listen, routes: OffLoopRoute[], opts: ServeOptions): Promise<OffLoopServer> {
    if (this.closed) throw new Error('the off-loop host is closed');
    if ('socketPath' in listen) {
      mkdirSync(dirname(listen.socketPath), { recursive: true });
      rmSync(listen.socketPath, { force: true });
    }
    const byPath = new Map(routes.map((r) => [r.path, r]));
    const answer = async (path: string): Promise<Answer> => {
      try {
        return await byPath.get(path)!.answer();
      } catch (err) {
        return { code: 500, contentType: 'text/plain; charset=utf-8', body: `error: ${(err as Error).message}\n` };
      }
    };
    const notFound = opts.notFound;
    let server: number;
    let bound: number;
    try {
      [server, bound] = this.native.listen(
        this.host,
        'socketPath' in listen ? null : listen.host,
        'socketPath' in listen ? 0 : listen.port,
        'socketPath' in listen ? listen.socketPath : null,
        routes.map((r) => r.path),
        routes.map((r) => (r.kind === 'ask' ? 1 : 0)),
        404,
        notFound.contentType,
        notFound.body,
        opts.deadlineMs ?? DEFAULT_ANSWER_DEADLINE_MS,
        opts.stallLimitMs ?? 0,
        opts.stalledBody ?? '',
      );
    } catch (err) {
      throw (err as NodeJS.ErrnoException).code === 'EADDRINUSE' ? new Error(opts.inUse) : err;
    }
    let open = true;
    const post = (id: number, path: string, a: Answer): void => {
      if (open && !this.closed) this.native.answer(this.host, server, id, path, a.code ?? 200, a.contentType, a.body);
    };
    this.handlers.set(server, (id, path) => void answer(path).then((a) => post(id, path, a)));
    if ('socketPath' in listen) chmodSync(listen.socketPath, 0o600);
    return {
      port: 'socketPath' in listen ? undefined : bound,
      refresh: async () => {
        for (const path of byPath.keys()) post(0, path, await answer(path));
      },
      close: async () => {
        if (!open) return;
        open = false;
        this.handlers.delete(server);
        if (!this.closed) this.native.closeServer(this.host, server);
        if ('socketPath' in listen) rmSync(listen.socketPath, { force: true });
        // A few turns of the event loop (as the worker thread's close took), so that clients in
        // this process see their keep-alive connections end (the end, then the close) before
        // they would reuse them on a server listening in this one's place.
        for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
      },
    };
  }

  /** Ends the thread (its servers with it). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.handlers.clear();
    this.native.closeHost(this.host);
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
