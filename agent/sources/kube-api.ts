/**
 * The few Kubernetes API calls the agent makes — list a page, watch a collection, post an Event —
 * over Node's own http/https, with the credentials of a `KubeApiConfig`.
 *
 * Why not client-node's generated API classes: importing them loads every model of the API
 * (a process importing the package's root reaches about 120 MB RSS, its KubeConfig alone about
 * 110 MB, its Watch plus ListWatch about 80 MB, a bare Node process 41 MB). The agent reads wire
 * JSON anyway (the Store consumes the objects as the API server sends them), so plain requests
 * give it exactly what it needs and nothing to convert back.
 */
import http from 'node:http';
import https from 'node:https';
import { isAscii } from 'node:buffer';
import type { WireObject } from './kube-wire.js';

/**
 * Where the API server is and how to authenticate to it. client-node's `KubeConfig` has this
 * shape (tests and exec-plugin kubeconfigs use it); `agent/sources/kubeconfig.ts` provides a
 * lean one for in-cluster service accounts and certificate/token kubeconfigs.
 */
export interface KubeApiConfig {
  getCurrentCluster(): { server: string } | null;
  /** Sets the TLS material, the Authorization header and an agent on `opts`. */
  applyToHTTPSOptions(opts: https.RequestOptions): Promise<void>;
}

/** An API error with the HTTP status (410 Gone: a watch's resourceVersion is too old). */
export class KubeApiError extends Error {
  constructor(
    message: string,
    readonly statusCode: number,
  ) {
    super(message);
  }
}

export type Query = Record<string, string | number | boolean | undefined>;

/** Cuts a response's text as its chunks arrive (`push` each, then `end` gives what is kept). */
export interface BodyCut {
  push(chunk: Buffer): void;
  end(): Buffer;
}

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: WireObject;
}

function url(server: string, path: string, query: Query): URL {
  const u = new URL(path, server.endsWith('/') ? server : `${server}/`);
  // The path is absolute: keep any path prefix of the server URL (a proxy).
  u.pathname = new URL(server).pathname.replace(/\/$/, '') + path;
  for (const [k, v] of Object.entries(query)) if (v !== undefined) u.searchParams.set(k, String(v));
  return u;
}

function statusMessage(body: string, code: number): string {
  try {
    const s = JSON.parse(body) as { message?: unknown };
    if (typeof s.message === 'string') return `HTTP ${code}: ${s.message}`;
  } catch {
    // not a Status object
  }
  return `HTTP ${code}${body ? `: ${body.slice(0, 200)}` : ''}`;
}

/**
 * The text of a UTF-8 JSON body. ASCII (what the API server writes but for labels or
 * annotations in other scripts) is copied byte for byte, which is several times cheaper than
 * decoding UTF-8; anything else is decoded.
 */
function jsonText(b: Buffer): string {
  return isAscii(b) ? b.toString('latin1') : b.toString('utf8');
}

const NEWLINE = 0x0a;
const CR = 0x0d;

export class KubeApi {
  /** One keep-alive agent per API (client-node makes one per request through its config). */
  private readonly agents = { http: new http.Agent({ keepAlive: true }), https: undefined as https.Agent | undefined };

  constructor(private readonly config: KubeApiConfig) {}

  get server(): string {
    const server = this.config.getCurrentCluster()?.server;
    if (!server) throw new Error('the kubeconfig names no cluster server: set the current context');
    return server;
  }

  private async request(
    method: string,
    path: string,
    query: Query,
    body: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<http.IncomingMessage> {
    const u = url(this.server, path, query);
    const opts: https.RequestOptions = { method, headers: { Accept: 'application/json' } };
    await this.config.applyToHTTPSOptions(opts);
    const secure = u.protocol === 'https:';
    if (!secure) opts.agent = this.agents.http;
    else if (!opts.agent) opts.agent = this.agents.https ??= new https.Agent({ keepAlive: true });
    if (body !== undefined) {
      opts.headers = {
        ...(opts.headers as Record<string, string>),
        'Content-Type': 'application/json',
        'Content-Length': String(Buffer.byteLength(body)),
      };
    }
    const lib = secure ? https : http;
    return new Promise((resolve, reject) => {
      const req = lib.request(u, { ...opts, signal }, resolve);
      req.on('error', reject);
      req.end(body);
    });
  }

  private async readAll(res: http.IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    if (!res.complete) throw new Error('the API server closed the connection mid-response');
    return Buffer.concat(chunks);
  }

  /** The body as `cut` keeps it, each chunk cut as it arrives (no joined copy of the whole body). */
  private async readCut(res: http.IncomingMessage, cut: BodyCut): Promise<Buffer> {
    for await (const c of res) cut.push(c as Buffer);
    if (!res.complete) throw new Error('the API server closed the connection mid-response');
    return cut.end();
  }

  private async call<T>(method: string, path: string, query: Query, body?: unknown, cut?: () => BodyCut): Promise<T> {
    const res = await this.request(
      method,
      path,
      query,
      body === undefined ? undefined : JSON.stringify(body),
      undefined,
    );
    const code = res.statusCode ?? 0;
    if (code < 200 || code >= 300)
      throw new KubeApiError(statusMessage((await this.readAll(res)).toString('utf8'), code), code);
    return JSON.parse(jsonText(cut ? await this.readCut(res, cut()) : await this.readAll(res))) as T;
  }

  /**
   * GET of a JSON object; `cut` may give a cutter (kube-wire.ts `UnreadCut`) that cuts the text
   * chunk by chunk as it arrives, before it is parsed.
   */
  getJson<T>(path: string, query: Query = {}, cut?: () => BodyCut): Promise<T> {
    return this.call<T>('GET', path, query, undefined, cut);
  }

  postJson<T>(path: string, body: unknown): Promise<T> {
    return this.call<T>('POST', path, {}, body);
  }

  /**
   * One watch request: calls `onEvent` for every event line until the server ends the watch
   * (resolves) or the connection fails or is aborted (rejects). `prepare` may cut each line's
   * text before it is parsed, in place (kube-wire.ts `withoutUnread`).
   *
   * Lines are found in the response's own chunks: a line within one chunk is parsed from a view
   * of it, only a line that spans chunks is copied once, whole; no text is decoded that is cut.
   */
  async watch(
    path: string,
    query: Query,
    onEvent: (e: WatchEvent) => void,
    signal: AbortSignal,
    prepare?: (json: Buffer) => Buffer,
  ): Promise<void> {
    const res = await this.request('GET', path, { ...query, watch: 1 }, undefined, signal);
    const code = res.statusCode ?? 0;
    if (code !== 200) throw new KubeApiError(statusMessage((await this.readAll(res)).toString('utf8'), code), code);
    const event = (line: Buffer): void => {
      // empty lines (and a lone CR) carry no event
      if (line.length === 0 || (line.length === 1 && line[0] === CR)) return;
      onEvent(JSON.parse(jsonText(prepare ? prepare(line) : line)) as WatchEvent);
    };
    /** The start of a line not ended yet: views of the chunks the response handed over. */
    let carry: Buffer[] = [];
    for await (const chunk of res as AsyncIterable<Buffer>) {
      let from = 0;
      for (let nl = chunk.indexOf(NEWLINE); nl >= 0; nl = chunk.indexOf(NEWLINE, from)) {
        const piece = chunk.subarray(from, nl);
        from = nl + 1;
        if (carry.length === 0) event(piece);
        else {
          carry.push(piece);
          const line = Buffer.concat(carry);
          carry = [];
          event(line);
        }
      }
      if (from < chunk.length) carry.push(chunk.subarray(from));
    }
    if (carry.length > 0) event(Buffer.concat(carry));
    if (!res.complete) throw new Error('watch connection closed before the server ended it');
  }

  destroy(): void {
    this.agents.http.destroy();
    this.agents.https?.destroy();
  }
}
