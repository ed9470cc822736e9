/**
 * A stand-in Kubernetes API server for tests: a real HTTP server speaking the list and watch
 * protocol for the resources of resources.ts (JSON only).
 *
 * - list: `metadata.resourceVersion`, `limit` + `continue` (consistent snapshot per continue token),
 *   equality `fieldSelector` / `labelSelector`.
 * - watch (`?watch=true`): a chunked stream of `{"type","object"}` lines from the given
 *   resourceVersion (replayed from history), ADDED for everything when none is given,
 *   BOOKMARK events when `allowWatchBookmarks=true`, a clean end after `timeoutSeconds`,
 *   and an ERROR event with a 410 Status when the resourceVersion is older than the retained history
 *   (`compact()` drops history, as etcd compaction does).
 * - writes: POST / PUT / PATCH / DELETE over HTTP, and the same from test code. PATCH takes a JSON
 *   patch, a JSON merge patch or a strategic merge patch (patch.ts); `fieldValidation=Strict` rejects unknown
 *   fields as the real server does.
 * - what kubectl needs besides: discovery (aggregated and classic, discovery.ts) and OpenAPI v3
 *   with the schemas of the kinds served (openapi.ts), so `kubectl apply -f`, `get`, `delete` and
 *   `get --watch` work against it with kubectl's default flags.
 * - faults: `dropWatches()` cuts every watch connection mid-stream, `endWatches()` ends them cleanly,
 *   `stop()` goes away (connections refused) and `start()` comes back on the same port,
 *   `forbid()` answers every new request 403 while open watches go on (RBAC or ServiceAccount deleted).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import {
  aggregated,
  AGGREGATED_TYPE,
  apiGroupList,
  apiResourceList,
  apiVersions,
  wantsAggregated,
} from './discovery.js';
import { openApiDocument, openApiIndex, schemaSet } from './openapi.js';
import { jsonPatch, mergePatch, StrategicMergePatch } from './patch.js';
import {
  parsePath,
  resourceByKind,
  RESOURCES,
  type ParsedPath,
  type ResourceKind,
  type ResourceName,
} from './resources.js';

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    creationTimestamp?: string;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface HistoryEntry {
  rv: number;
  resource: ResourceName;
  type: WatchEventType;
  object: KubeObject;
}

interface Watcher {
  resource: ResourceKind;
  namespace?: string;
  matches: (o: KubeObject) => boolean;
  res: ServerResponse;
  socket: Socket;
  bookmarks?: NodeJS.Timeout;
  timeout?: NodeJS.Timeout;
}

export interface ApiServerOptions {
  /** Port; 0 = ephemeral (the chosen port is kept across stop/start). */
  port?: number;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** Interval of BOOKMARK events for watches that allow them. */
  bookmarkIntervalMs?: number;
}

/** What the server has been asked, per resource: lets tests see a relist happen. */
export interface RequestCounts {
  list: Record<string, number>;
  watch: Record<string, number>;
  watchGone: Record<string, number>;
  /** Bytes of list responses sent (JSON). */
  listBytes: Record<string, number>;
}

const clone = <T>(o: T): T => structuredClone(o);

function objectKey(o: KubeObject): string {
  return `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

/** Equality-only selectors ("a=b,c==d,e!=f"), enough for what informers send. */
function parseSelector(sel: string | null): Array<{ key: string; value: string; negate: boolean }> {
  if (!sel) return [];
  return sel
    .split(',')
    .filter((s) => s.length > 0)
    .map((term) => {
      const m = /^([^!=]+)(!=|==|=)(.*)$/.exec(term);
      if (!m) throw new Error(`unsupported selector term "${term}": only =, == and != are implemented`);
      return { key: m[1]!.trim(), value: m[3]!.trim(), negate: m[2] === '!=' };
    });
}

function fieldValue(o: KubeObject, path: string): string {
  let cur: unknown = o;
  for (const p of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return '';
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur === undefined || cur === null ? '' : String(cur);
}

function matcher(url: URL): (o: KubeObject) => boolean {
  const fields = parseSelector(url.searchParams.get('fieldSelector'));
  const labels = parseSelector(url.searchParams.get('labelSelector'));
  return (o) =>
    fields.every((t) => (fieldValue(o, t.key) === t.value) !== t.negate) &&
    labels.every((t) => ((o.metadata.labels ?? {})[t.key] === t.value) !== t.negate);
}

function status(code: number, reason: string, message: string): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

/** An error with the HTTP status and Status reason the server answers with. */
class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

interface WriteOptions {
  contentType: string;
  strict: boolean;
}

export class TestApiServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly watchers = new Set<Watcher>();
  private readonly objects = new Map<ResourceName, Map<string, KubeObject>>();
  private history: HistoryEntry[] = [];
  /** Watches from a resourceVersion below this get 410 Gone. */
  private oldestRetained = 1;
  private rv = 1;
  private uid = 0;
  private generated = 0;
  private port: number;
  private readonly host: string;
  private readonly bookmarkIntervalMs: number;
  private readonly snapshots = new Map<string, { items: KubeObject[]; rv: number }>();
  private encodings = new WeakMap<KubeObject, string>();
  private snapshotSeq = 0;
  private forbidden = false;
  readonly counts: RequestCounts = { list: {}, watch: {}, watchGone: {}, listBytes: {} };

  constructor(opts: ApiServerOptions = {}) {
    this.port = opts.port ?? 0;
    this.host = opts.host ?? '127.0.0.1';
    this.bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 1000;
    for (const r of RESOURCES) this.objects.set(r.plural as ResourceName, new Map());
  }

  /** Starts listening (again on the same port after stop()). */
  async start(): Promise<void> {
    if (this.server) return;
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, this.host, () => resolve());
    });
    const addr = server.address();
    if (addr && typeof addr === 'object') this.port = addr.port;
    this.server = server;
  }

  /** Goes away: stops listening and cuts every open connection. State is kept. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const w of [...this.watchers]) this.closeWatcher(w, false);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  /** A kubeconfig (YAML-compatible JSON) pointing at this server, for `--kubeconfig`. */
  kubeconfig(): string {
    return JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      // client-node refuses plain http unless TLS verification is explicitly off.
      clusters: [{ name: 'test', cluster: { server: this.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'test', user: { token: 'test' } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: 'test' } }],
      'current-context': 'test',
    });
  }

  /** Number of open watch streams, optionally of one resource. */
  activeWatches(resource?: ResourceName): number {
    return [...this.watchers].filter((w) => resource === undefined || w.resource.plural === resource).length;
  }

  // ---- test helpers: writes ------------------------------------------------------------------

  create(obj: KubeObject): KubeObject {
    return this.insert(obj, true);
  }

  /**
   * `create` without copies, for a bench's large cluster: the server keeps `obj` itself (its
   * top level and metadata get name, uid, resourceVersion) and returns it, so generated objects
   * may share their constant parts. Neither the caller nor anyone else may change it afterwards.
   */
  createOwned(obj: KubeObject): KubeObject {
    return this.insert(obj, false);
  }

  private insert(obj: KubeObject, copy: boolean): KubeObject {
    const r = this.kindOf(obj);
    const store = this.objects.get(r.plural as ResourceName)!;
    const o = this.normalize(copy ? clone(obj) : obj, r);
    if (store.has(objectKey(o))) throw new Error(`${r.kind} ${objectKey(o)} already exists`);
    o.metadata.uid = `uid-${++this.uid}`;
    o.metadata.creationTimestamp ??= new Date().toISOString();
    const stored = this.commit(r, 'ADDED', o);
    return copy ? clone(stored) : stored;
  }

  update(obj: KubeObject): KubeObject {
    const r = this.kindOf(obj);
    const store = this.objects.get(r.plural as ResourceName)!;
    const o = this.normalize(clone(obj), r);
    const old = store.get(objectKey(o));
    if (!old) throw new Error(`${r.kind} ${objectKey(o)} does not exist`);
    o.metadata.uid = old.metadata.uid;
    o.metadata.creationTimestamp = old.metadata.creationTimestamp;
    return clone(this.commit(r, 'MODIFIED', o));
  }

  /** Create or update. */
  apply(obj: KubeObject): KubeObject {
    const r = this.kindOf(obj);
    const exists = this.objects.get(r.plural as ResourceName)!.has(objectKey(this.normalize(clone(obj), r)));
    return exists ? this.update(obj) : this.create(obj);
  }

  delete(kind: string, name: string, namespace?: string): KubeObject {
    const r = resourceByKind(kind);
    if (!r) throw new Error(`unknown kind ${kind}`);
    const store = this.objects.get(r.plural as ResourceName)!;
    const key = `${r.namespaced ? (namespace ?? 'default') : ''}/${name}`;
    const old = store.get(key);
    if (!old) throw new Error(`${kind} ${key} does not exist`);
    return clone(this.commit(r, 'DELETED', clone(old)));
  }

  get(kind: string, name: string, namespace?: string): KubeObject | undefined {
    const r = resourceByKind(kind);
    if (!r) return undefined;
    const o = this.objects
      .get(r.plural as ResourceName)!
      .get(`${r.namespaced ? (namespace ?? 'default') : ''}/${name}`);
    return o ? clone(o) : undefined;
  }

  list(resource: ResourceName): KubeObject[] {
    return [...this.objects.get(resource)!.values()].map(clone);
  }

  // ---- test helpers: faults ------------------------------------------------------------------

  /**
   * Forgets history, as etcd compaction does after a long disconnect: a watch from any
   * resourceVersion handed out so far gets 410 Gone, and the client must relist.
   */
  compact(): void {
    this.history = [];
    this.rv += 1;
    this.oldestRetained = this.rv;
  }

  /** Cuts every watch connection mid-stream (the client sees an error, not a clean end). */
  dropWatches(): void {
    for (const w of [...this.watchers]) this.closeWatcher(w, false);
  }

  /** New requests get 403 Forbidden (`forbid(false)` lifts it); watches already open keep streaming. */
  forbid(on = true): void {
    this.forbidden = on;
  }

  /** Ends every watch stream cleanly, as a server-side timeout does. */
  endWatches(): void {
    for (const w of [...this.watchers]) this.closeWatcher(w, true);
  }

  // ---- test hook: RBAC -----------------------------------------------------------------------

  /** resource -> verbs answered 403 Forbidden, as when RBAC is revoked. */
  private readonly forbiddenVerbs = new Map<string, Set<string>>();

  /**
   * Answers 403 to these verbs on a resource (default list and watch) from now on, and cuts the
   * open watches of it, as revoking a ClusterRole does; `allowResource` restores it.
   */
  forbidResource(resource: ResourceName, verbs: string[] = ['list', 'watch']): void {
    this.forbiddenVerbs.set(resource, new Set(verbs));
    for (const w of [...this.watchers]) if (w.resource.plural === resource) this.closeWatcher(w, false);
  }

  allowResource(resource: ResourceName): void {
    this.forbiddenVerbs.delete(resource);
  }

  /** The API server's 403 for a verb the hook forbids, or undefined. */
  private forbiddenReply(method: string, p: ParsedPath, url: URL): [number, unknown] | undefined {
    const watch = url.searchParams.get('watch');
    const verb =
      method === 'GET'
        ? p.name !== undefined
          ? 'get'
          : watch === 'true' || watch === '1'
            ? 'watch'
            : 'list'
        : ({ POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' } as Record<string, string>)[method];
    if (!verb || !this.forbiddenVerbs.get(p.resource.plural)?.has(verb)) return undefined;
    const group = p.resource.apiVersion.includes('/') ? p.resource.apiVersion.split('/')[0]! : '';
    const scope = p.namespace ? `in the namespace "${p.namespace}"` : 'at the cluster scope';
    const body = status(
      403,
      'Forbidden',
      `${p.resource.plural} is forbidden: User "system:serviceaccount:kube-system:weir" cannot ${verb} resource "${p.resource.plural}" in API group "${group}" ${scope}`,
    );
    return [403, { ...body, details: { kind: p.resource.plural, group } }];
  }

  // ---- internals -----------------------------------------------------------------------------

  private kindOf(obj: KubeObject): ResourceKind {
    const r = obj.kind ? resourceByKind(obj.kind) : undefined;
    if (!r)
      throw new Error(`object kind must be one of ${RESOURCES.map((x) => x.kind).join(', ')}; got ${String(obj.kind)}`);
    return r;
  }

  /** Name, kind, apiVersion and namespace as the server sets them; changes and returns `o`. */
  private normalize(o: KubeObject, r: ResourceKind): KubeObject {
    const generate = o.metadata?.generateName;
    if (!o.metadata?.name && typeof generate === 'string') {
      o.metadata.name = `${generate}${(++this.generated).toString(36).padStart(5, '0')}`;
      delete o.metadata.generateName;
    }
    if (!o.metadata?.name) throw new Error(`${r.kind} needs metadata.name or metadata.generateName`);
    o.apiVersion = r.apiVersion;
    o.kind = r.kind;
    if (r.namespaced) o.metadata.namespace ??= 'default';
    else delete o.metadata.namespace;
    return o;
  }

  private commit(r: ResourceKind, type: WatchEventType, o: KubeObject): KubeObject {
    const resource = r.plural as ResourceName;
    const store = this.objects.get(resource)!;
    o.metadata.resourceVersion = String(++this.rv);
    if (type === 'DELETED') store.delete(objectKey(o));
    else store.set(objectKey(o), o);
    // `o` is never changed after this (a write stores a new object): history shares it.
    const entry: HistoryEntry = { rv: this.rv, resource, type, object: o };
    this.history.push(entry);
    for (const w of this.watchers) {
      if (w.resource.plural === resource && this.visible(w, o)) this.send(w, type, o);
    }
    return o;
  }

  private visible(w: Pick<Watcher, 'namespace' | 'matches'>, o: KubeObject): boolean {
    return (w.namespace === undefined || o.metadata.namespace === w.namespace) && w.matches(o);
  }

  private send(w: Watcher, type: string, object: unknown): void {
    if (!w.res.writableEnded)
      w.res.write(`{"type":${JSON.stringify(type)},"object":${this.encoded(object as KubeObject)}}\n`);
  }

  private closeWatcher(w: Watcher, clean: boolean): void {
    this.watchers.delete(w);
    if (w.bookmarks) clearInterval(w.bookmarks);
    if (w.timeout) clearTimeout(w.timeout);
    if (clean) w.res.end();
    else w.socket.destroy();
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    const reply = (code: number, body: unknown, encoded = false): void => {
      res.writeHead(code, { 'Content-Type': 'application/json' });
      res.end(encoded ? (body as string) : JSON.stringify(body));
    };
    if (this.forbidden) {
      reply(403, status(403, 'Forbidden', `forbidden: ${req.method} ${url.pathname}`));
      return;
    }
    if (req.method === 'GET' && this.serveMeta(url.pathname, req, res)) return;
    const parsed = parsePath(url.pathname);
    if (!parsed) {
      reply(404, status(404, 'NotFound', `the server could not find the requested resource ${url.pathname}`));
      return;
    }
    const denied = this.forbiddenReply(req.method ?? '', parsed, url);
    if (denied) {
      reply(...denied);
      return;
    }
    if (req.method === 'GET' && parsed.name === undefined) {
      const w = url.searchParams.get('watch');
      if (w === 'true' || w === '1') this.watch(parsed, url, req, res);
      else this.listRequest(parsed, url, reply);
      return;
    }
    if (req.method === 'GET') {
      const o = this.get(parsed.resource.kind, parsed.name!, parsed.namespace);
      if (o) reply(200, o);
      else reply(404, status(404, 'NotFound', `${parsed.resource.plural} "${parsed.name}" not found`));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        const body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as KubeObject) : undefined;
        const options: WriteOptions = {
          contentType: (req.headers['content-type'] ?? 'application/json').split(';')[0]!.trim(),
          strict: url.searchParams.get('fieldValidation') === 'Strict',
        };
        reply(...this.write(req.method ?? '', parsed, body, options));
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        const code =
          err instanceof HttpError
            ? err.code
            : /already exists/.test(msg)
              ? 409
              : /does not exist/.test(msg)
                ? 404
                : 400;
        const reason =
          err instanceof HttpError
            ? err.reason
            : code === 409
              ? 'AlreadyExists'
              : code === 404
                ? 'NotFound'
                : 'BadRequest';
        reply(code, status(code, reason, msg));
      }
    });
  }

  private write(method: string, p: ParsedPath, body: KubeObject | undefined, opts: WriteOptions): [number, unknown] {
    const checked = (o: KubeObject): KubeObject => {
      if (opts.strict) this.validate(p.resource, o);
      return o;
    };
    const withNs = (o: KubeObject): KubeObject => ({
      ...o,
      kind: o.kind ?? p.resource.kind,
      metadata: { ...o.metadata, ...(p.namespace ? { namespace: p.namespace } : {}) },
    });
    switch (method) {
      case 'POST':
        if (!body) throw new Error('request body is required');
        return [201, this.create(checked(withNs(body)))];
      case 'PUT':
        if (!body) throw new Error('request body is required');
        return [200, this.update(checked(withNs({ ...body, metadata: { ...body.metadata, name: p.name! } })))];
      case 'PATCH': {
        const old = this.get(p.resource.kind, p.name!, p.namespace);
        if (!old) throw new Error(`${p.resource.kind} ${p.name} does not exist`);
        return [200, this.update(checked(this.patch(p.resource, old, body, opts.contentType)))];
      }
      case 'DELETE':
        return [200, this.delete(p.resource.kind, p.name!, p.namespace)];
      default:
        throw new Error(`method ${method} is not supported`);
    }
  }

  private patch(r: ResourceKind, old: KubeObject, body: unknown, contentType: string): KubeObject {
    switch (contentType) {
      case 'application/json-patch+json':
        return jsonPatch(old, body) as KubeObject;
      case 'application/merge-patch+json':
        return mergePatch(old, body) as KubeObject;
      case 'application/strategic-merge-patch+json':
        return new StrategicMergePatch(schemaSet(RESOURCES)).apply(r.kind, old, body) as KubeObject;
      default:
        throw new HttpError(
          415,
          'UnsupportedMediaType',
          `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got ${contentType})`,
        );
    }
  }

  /** `fieldValidation=Strict`: unknown fields are an error, named as the real server names them. */
  private validate(r: ResourceKind, o: KubeObject): void {
    const unknown = schemaSet(RESOURCES).unknownFields(r.kind, o);
    if (unknown.length === 0) return;
    const version = r.apiVersion.split('/').pop()!;
    throw new HttpError(
      400,
      'BadRequest',
      `${r.kind} in version "${version}" cannot be handled as a ${r.kind}: strict decoding error: ${unknown.map((f) => `unknown field "${f}"`).join(', ')}`,
    );
  }

  /** Discovery, OpenAPI and version: true if the path was one of them (and answered). */
  private serveMeta(path: string, req: IncomingMessage, res: ServerResponse): boolean {
    const json = (body: unknown, type = 'application/json'): true => {
      res.writeHead(200, { 'Content-Type': type });
      res.end(JSON.stringify(body));
      return true;
    };
    const p = path.replace(/\/+$/, '');
    if (p === '/version')
      return json({ major: '1', minor: '34', gitVersion: 'v1.34.0', platform: 'linux/amd64', goVersion: 'go1.24' });
    if (p === '/api' || p === '/apis') {
      if (wantsAggregated(req.headers.accept)) return json(aggregated(RESOURCES, p === '/api'), AGGREGATED_TYPE);
      return json(p === '/api' ? apiVersions() : apiGroupList(RESOURCES));
    }
    const gv = /^\/(?:api\/(v1)|apis\/([^/]+\/[^/]+))$/.exec(p);
    if (gv) {
      const doc = apiResourceList(RESOURCES, gv[1] ?? gv[2]!);
      return doc !== undefined && json(doc);
    }
    if (p === '/openapi/v3') return json(openApiIndex(RESOURCES));
    const oa = /^\/openapi\/v3\/(?:api\/(v1)|apis\/([^/]+\/[^/]+))$/.exec(p);
    if (oa) {
      const doc = openApiDocument(oa[1] ?? oa[2]!, RESOURCES);
      return doc !== undefined && json(doc);
    }
    return false;
  }

  private listRequest(p: ParsedPath, url: URL, reply: (code: number, body: unknown, encoded?: boolean) => void): void {
    const plural = p.resource.plural;
    this.counts.list[plural] = (this.counts.list[plural] ?? 0) + 1;
    const limit = Number(url.searchParams.get('limit') ?? '0');
    const token = url.searchParams.get('continue');
    let snap: { items: KubeObject[]; rv: number };
    if (token) {
      const s = this.snapshots.get(token);
      if (!s) {
        reply(410, status(410, 'Expired', 'the provided continue parameter is too old; restart the list without it'));
        return;
      }
      this.snapshots.delete(token);
      snap = s;
    } else {
      const m = matcher(url);
      // Stored objects are replaced on every write, never changed in place: a snapshot holds
      // them as they are. Key order as etcd's (bytes, not locale).
      const items = [...this.objects.get(plural as ResourceName)!.entries()]
        .filter(([, o]) => this.visible({ namespace: p.namespace, matches: m }, o))
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([, o]) => o);
      snap = { items, rv: this.rv };
    }
    let items = snap.items;
    const metadata: Record<string, string> = { resourceVersion: String(snap.rv) };
    if (limit > 0 && items.length > limit) {
      const next = `c${++this.snapshotSeq}`;
      this.snapshots.set(next, { items: items.slice(limit), rv: snap.rv });
      items = items.slice(0, limit);
      metadata.continue = next;
    }
    // Each object is serialized once (as the API server's watch cache keeps them encoded), so a
    // list of a large cluster costs the server little beside the client it is measured against.
    const head = JSON.stringify({ kind: p.resource.listKind, apiVersion: p.resource.apiVersion, metadata });
    const body = `${head.slice(0, -1)},"items":[${items.map((o) => this.encoded(o)).join(',')}]}`;
    this.counts.listBytes[plural] = (this.counts.listBytes[plural] ?? 0) + body.length;
    reply(200, body, true);
  }

  /**
   * Forgets the encoded JSON kept for lists (a large cluster's is several hundred MB), e.g. once
   * a bench's client has listed everything; objects are encoded again when asked for.
   */
  forgetEncodings(): void {
    this.encodings = new WeakMap();
  }

  /** The JSON of a stored object, made once per version. */
  private encoded(o: KubeObject): string {
    let s = this.encodings.get(o);
    if (s === undefined) {
      s = JSON.stringify(o);
      this.encodings.set(o, s);
    }
    return s;
  }

  private watch(p: ParsedPath, url: URL, req: IncomingMessage, res: ServerResponse): void {
    const plural = p.resource.plural as ResourceName;
    this.counts.watch[plural] = (this.counts.watch[plural] ?? 0) + 1;
    const w: Watcher = { resource: p.resource, namespace: p.namespace, matches: matcher(url), res, socket: req.socket };
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    const from = url.searchParams.get('resourceVersion');
    if (from && from !== '0' && Number(from) < this.oldestRetained) {
      this.counts.watchGone[plural] = (this.counts.watchGone[plural] ?? 0) + 1;
      res.end(
        `${JSON.stringify({ type: 'ERROR', object: status(410, 'Expired', `too old resource version: ${from} (${this.oldestRetained})`) })}\n`,
      );
      return;
    }
    this.watchers.add(w);
    res.on('close', () => this.closeWatcher(w, true));
    if (!from || from === '0') {
      for (const o of this.objects.get(plural)!.values()) if (this.visible(w, o)) this.send(w, 'ADDED', o);
    } else {
      for (const e of this.history) {
        if (e.resource === plural && e.rv > Number(from) && this.visible(w, e.object)) this.send(w, e.type, e.object);
      }
    }
    if (url.searchParams.get('allowWatchBookmarks') === 'true') {
      w.bookmarks = setInterval(() => {
        this.send(w, 'BOOKMARK', {
          kind: p.resource.kind,
          apiVersion: p.resource.apiVersion,
          metadata: { resourceVersion: String(this.rv) },
        });
      }, this.bookmarkIntervalMs);
    }
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? '0');
    if (timeout > 0) w.timeout = setTimeout(() => this.closeWatcher(w, true), timeout * 1000);
  }
}
