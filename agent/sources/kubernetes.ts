/**
 * The Kubernetes source: informers for Namespaces, Pods (every node: the ipcache needs remote
 * pods), NetworkPolicies and Nodes, and (with Services on) Services and EndpointSlices, turned into one stream of changes for the Store.
 *
 * - Each informer lists in pages (a consistent snapshot without one huge response), then watches
 *   from the list's resourceVersion. A watch the server ends (its timeout) is reopened from the
 *   last resourceVersion seen; 410 Gone relists. Any other error (a dropped connection, a refused
 *   list) restarts the informer with exponential backoff; a restart resumes the watch from the
 *   last resourceVersion, and when that is gone relists: the relist reports as deletions what was
 *   deleted meanwhile.
 * - The source keeps no objects: per object only its key and resourceVersion (enough to report
 *   what a relist no longer holds and to skip unchanged ones). The Store holds the objects; a copy
 *   here would be the largest part of the agent's heap (37 MiB at 10,000 pods).
 * - Watches ask for bookmarks and a server-side timeout (as client-go does), and a watchdog aborts
 *   a watch that has been silent for longer than that, so a half-open connection cannot hang it.
 * - `synced` resolves once every informer has completed its first list.
 * - Requests are plain HTTP through `KubeApi` (kube-api.ts): objects stay the wire JSON the API
 *   server sent, trimmed of what weir never reads (kube-wire.ts `slim`), and the agent does not
 *   load client-node's API models.
 */
import { Backoff } from './backoff.js';
import { KubeApi, KubeApiError, type KubeApiConfig, type WatchEvent } from './kube-api.js';
import { objectRef, slim, UnreadCut, withoutUnread, type WireObject } from './kube-wire.js';

export type WatchedResource = 'namespaces' | 'pods' | 'networkpolicies' | 'nodes' | 'services' | 'endpointslices';
export type ChangeAction = 'add' | 'update' | 'delete';

export const WATCHED_RESOURCES: readonly WatchedResource[] = [
  'namespaces',
  'nodes',
  'pods',
  'networkpolicies',
  'services',
  'endpointslices',
];
/** What the agent watches with Services off. */
export const POLICY_RESOURCES: readonly WatchedResource[] = ['namespaces', 'nodes', 'pods', 'networkpolicies'];

/** One change as the Store consumes it. `object` is wire JSON with kind and apiVersion set. */
export interface KubernetesChange {
  resource: WatchedResource;
  action: ChangeAction;
  object: WireObject;
}

export interface ResourceStatus {
  /** The first list completed. */
  synced: boolean;
  /** A watch is open right now. */
  watching: boolean;
  /** Times the informer was restarted after an error. */
  restarts: number;
  lastError?: string;
  /** The API server answered 403 Forbidden: what the agent may not do (until it may again). */
  forbidden?: { verb: string; resource: WatchedResource; message: string };
}

export interface KubernetesSourceOptions {
  /** Server and credentials: agent/sources/kubeconfig.ts, or client-node's KubeConfig. */
  kubeConfig: KubeApiConfig;
  /** Receives every change, in order per resource. */
  onChange: (change: KubernetesChange) => void;
  /** Called for every error before the informer is restarted (for logs). */
  onError?: (resource: WatchedResource, err: Error, retryInMs: number) => void;
  backoff?: { initialMs?: number; maxMs?: number };
  /** Server-side watch timeout; each watch picks a value in [t, 2t) (client-go does the same). */
  watchTimeoutSeconds?: number;
  /** Page size of the initial list and relists. */
  pageSize?: number;
  /** Resources to watch (default WATCHED_RESOURCES). */
  resources?: readonly WatchedResource[];
  /**
   * Resolves once the changes delivered so far are consumed. A list awaits it after each page
   * (the next page already requested), so pages are not parsed faster than the consumer takes
   * them and a large list is never held whole in parsed objects waiting for it.
   */
  consumed?: () => Promise<void>;
}

interface KindInfo {
  path: string;
  kind: string;
  apiVersion: string;
}

const KINDS: Record<WatchedResource, KindInfo> = {
  namespaces: { path: '/api/v1/namespaces', kind: 'Namespace', apiVersion: 'v1' },
  nodes: { path: '/api/v1/nodes', kind: 'Node', apiVersion: 'v1' },
  pods: { path: '/api/v1/pods', kind: 'Pod', apiVersion: 'v1' },
  networkpolicies: {
    path: '/apis/networking.k8s.io/v1/networkpolicies',
    kind: 'NetworkPolicy',
    apiVersion: 'networking.k8s.io/v1',
  },
  services: { path: '/api/v1/services', kind: 'Service', apiVersion: 'v1' },
  endpointslices: {
    path: '/apis/discovery.k8s.io/v1/endpointslices',
    kind: 'EndpointSlice',
    apiVersion: 'discovery.k8s.io/v1',
  },
};

interface WireList {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: WireObject[];
}

/**
 * A 403 Forbidden from the API server (RBAC), with the verb refused: from the Status message
 * ("cannot list resource ...") when there is one, else the request that got it.
 */
function forbiddenOf(err: unknown, resource: WatchedResource, request: 'list' | 'watch'): ResourceStatus['forbidden'] {
  if (!(err instanceof KubeApiError) || err.statusCode !== 403) return undefined;
  const verb = /cannot (\w+) resource/.exec(err.message)?.[1] ?? request;
  return { verb, resource, message: err.message || `${resource} is forbidden (403)` };
}

function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

type Kept = string | number;

/**
 * A resourceVersion as the source keeps it: a number when it is a plain decimal that a number
 * holds exactly (what the API server sends: etcd's revision), else its text. Opaque either way
 * (compared for equality only, and given back as text); a number is no string to hold per object
 * (about 3 MiB at 100,000 pods).
 */
function kept(rv: string | undefined): Kept {
  if (rv === undefined) return '';
  if (rv.length === 0 || rv.length > 15 || rv.charCodeAt(0) === 0x30) return rv;
  for (let i = 0; i < rv.length; i++) {
    const c = rv.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return rv;
  }
  return Number(rv);
}

/** The watch ended because of 410 Gone: relist, no error. */
class Gone extends Error {}

class ResourceInformer {
  readonly status: ResourceStatus = { synced: false, watching: false, restarts: 0 };
  /** "namespace/name" -> resourceVersion of every object known (`kept`: a number where it can be). */
  private readonly known = new Map<string, Kept>();
  private readonly backoff: Backoff;
  private readonly info: KindInfo;
  private retryTimer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private controller: AbortController | undefined;
  private stopped = false;
  /** The last resourceVersion seen (list or watch event), where a restarted watch resumes. */
  private resourceVersion: string | undefined;
  /** Bumped by stop() and every restart, so a superseded loop never emits. */
  private generation = 0;
  /** The request under way, to name what a 403 refused. */
  private request: 'list' | 'watch' = 'list';

  constructor(
    readonly resource: WatchedResource,
    private readonly api: KubeApi,
    private readonly opts: KubernetesSourceOptions,
    private readonly onSynced: () => void,
  ) {
    this.info = KINDS[resource];
    this.backoff = new Backoff({
      initialMs: opts.backoff?.initialMs ?? 500,
      maxMs: opts.backoff?.maxMs ?? 30_000,
      resetAfterMs: 30_000,
    });
  }

  private emit(action: ChangeAction, obj: WireObject): void {
    if (!this.stopped) this.opts.onChange({ resource: this.resource, action, object: obj });
  }

  /**
   * Wire JSON with kind/apiVersion (list items come without them), slimmed. The object is this
   * informer's own (parsed from its response), so it is completed in place, not copied.
   */
  private wire(obj: WireObject): WireObject {
    const info = this.info;
    if (obj.kind !== info.kind) obj.kind = info.kind;
    if (obj.apiVersion !== info.apiVersion) obj.apiVersion = info.apiVersion;
    return slim(obj);
  }

  /** A deletion's object: what identifies it (the Store deletes by kind and key). */
  private tombstone(key: string, resourceVersion: string): WireObject {
    const slash = key.indexOf('/');
    const metadata =
      slash < 0
        ? { name: key, resourceVersion }
        : { namespace: key.slice(0, slash), name: key.slice(slash + 1), resourceVersion };
    return { kind: this.info.kind, apiVersion: this.info.apiVersion, metadata };
  }

  /**
   * Every page of the collection, each page's objects delivered as it arrives (no whole list
   * held at once); once the last page is in, what was known and is no longer listed is deleted.
   * The next page is requested before this one is delivered (the API server prepares it
   * meanwhile); delivery then waits until the consumer has taken the page (`consumed`).
   */
  private async list(gen: number): Promise<string> {
    const limit = this.opts.pageSize ?? 500;
    // what a relist no longer holds is deleted; a first list has nothing to delete (100,000 keys
    // at a large cluster's first sync are not collected for nothing)
    const listed = this.known.size > 0 ? new Set<string>() : undefined;
    this.request = 'list';
    // Members weir never reads (managedFields, statuses, volumes, probes...) are cut before parsing.
    const fetchPage = (cont: string | undefined): Promise<WireList> => {
      const p = this.api.getJson<WireList>(this.info.path, { limit, continue: cont }, () => new UnreadCut());
      // handled here too: a list that stops before awaiting it must not leave a rejection unhandled
      p.catch(() => undefined);
      return p;
    };
    let next: Promise<WireList> | undefined = fetchPage(undefined);
    let rv = '';
    while (next) {
      const page: WireList = await next;
      if (gen !== this.generation) throw new Error('stopped');
      rv = page.metadata?.resourceVersion ?? rv;
      const cont = page.metadata?.continue || undefined;
      next = cont ? fetchPage(cont) : undefined;
      for (const item of page.items ?? []) {
        const o = this.wire(item);
        const key = objectRef(o);
        const version = kept(o.metadata?.resourceVersion);
        listed?.add(key);
        const old = this.known.get(key);
        this.known.set(key, version);
        if (old === undefined) this.emit('add', o);
        else if (old !== version) this.emit('update', o);
      }
      page.items = undefined;
      await this.opts.consumed?.();
      if (gen !== this.generation) throw new Error('stopped');
    }
    if (listed)
      for (const [key, version] of this.known) {
        if (!listed.has(key)) {
          this.known.delete(key);
          this.emit('delete', this.tombstone(key, String(version)));
        }
      }
    this.resourceVersion = rv;
    if (this.status.forbidden?.verb === 'list') delete this.status.forbidden;
    return rv;
  }

  private onEvent(e: WatchEvent, gen: number): string | undefined {
    if (gen !== this.generation) return undefined;
    if (e.type === 'ERROR') {
      const status = e.object as { code?: number; message?: string };
      if (status.code === 410) throw new Gone(status.message ?? 'Gone');
      throw new KubeApiError(`watch error: ${status.message ?? JSON.stringify(e.object)}`, status.code ?? 0);
    }
    if (this.status.forbidden?.verb === 'watch') delete this.status.forbidden;
    const rv = e.object.metadata?.resourceVersion;
    if (e.type === 'BOOKMARK') return rv;
    const o = this.wire(e.object);
    const key = objectRef(o);
    if (e.type === 'DELETED') {
      this.known.delete(key);
      this.emit('delete', o);
    } else {
      const existed = this.known.has(key);
      this.known.set(key, kept(o.metadata?.resourceVersion));
      this.emit(existed ? 'update' : 'add', o);
    }
    return rv;
  }

  private async run(gen: number): Promise<void> {
    // A restart resumes the watch where it broke off (410 Gone relists): relisting a large
    // cluster after every dropped connection would cost the API server and this agent.
    let rv = this.resourceVersion ?? (await this.list(gen));
    for (;;) {
      if (gen !== this.generation) return;
      const base = this.opts.watchTimeoutSeconds ?? 300;
      const timeout = base + Math.floor(Math.random() * base);
      const controller = new AbortController();
      this.controller = controller;
      const arm = (): void => {
        clearTimeout(this.watchdog);
        this.watchdog = setTimeout(() => controller.abort(), (timeout + 30) * 1000);
        this.watchdog.unref();
      };
      arm();
      this.status.watching = true;
      if (!this.status.synced) {
        // The first list is complete and its changes delivered.
        this.status.synced = true;
        this.onSynced();
      }
      try {
        this.request = 'watch';
        await this.api.watch(
          this.info.path,
          { resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: timeout },
          (e) => {
            arm();
            rv = this.onEvent(e, gen) ?? rv;
            this.resourceVersion = rv;
          },
          controller.signal,
          withoutUnread,
        );
      } catch (err) {
        if (!(err instanceof Gone)) throw err;
        this.status.watching = false;
        rv = await this.list(gen);
      } finally {
        clearTimeout(this.watchdog);
        this.status.watching = false;
      }
    }
  }

  start(): void {
    this.stopped = false;
    this.backoff.started();
    const gen = ++this.generation;
    this.run(gen).catch((err: unknown) => {
      if (gen === this.generation) this.failed(err);
    });
  }

  private failed(err: unknown): void {
    this.status.watching = false;
    if (this.stopped) return;
    const error = err instanceof Error ? err : new Error(errorMessage(err));
    this.status.lastError = errorMessage(err);
    const forbidden = forbiddenOf(err, this.resource, this.request);
    if (forbidden) this.status.forbidden = forbidden;
    if (this.retryTimer) return;
    const delay = this.backoff.next();
    this.opts.onError?.(this.resource, error, delay);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.stopped) return;
      this.status.restarts += 1;
      this.start();
    }, delay);
  }

  stop(): Promise<void> {
    this.stopped = true;
    this.generation += 1;
    clearTimeout(this.retryTimer);
    clearTimeout(this.watchdog);
    this.retryTimer = undefined;
    this.controller?.abort();
    this.status.watching = false;
    return Promise.resolve();
  }

  /** Keys ("namespace/name") of the objects known now. */
  keys(): string[] {
    return [...this.known.keys()];
  }
}

export class KubernetesSource {
  private readonly informers: ResourceInformer[];
  private resolveSynced!: () => void;
  /** Resolves when every resource has been listed once and its change events delivered. */
  readonly synced: Promise<void>;
  private readonly events = new Map<string, number>();
  private readonly api: KubeApi;

  constructor(private readonly opts: KubernetesSourceOptions) {
    this.synced = new Promise((r) => (this.resolveSynced = r));
    this.api = new KubeApi(opts.kubeConfig);
    const counted: KubernetesSourceOptions = {
      ...opts,
      onChange: (c) => {
        const k = `${c.resource}|${c.action}`;
        this.events.set(k, (this.events.get(k) ?? 0) + 1);
        opts.onChange(c);
      },
    };
    this.informers = (opts.resources ?? WATCHED_RESOURCES).map(
      (r) =>
        new ResourceInformer(r, this.api, counted, () => {
          if (this.informers.every((i) => i.status.synced)) this.resolveSynced();
        }),
    );
  }

  start(): void {
    for (const i of this.informers) i.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.stop()));
    this.api.destroy();
  }

  get isSynced(): boolean {
    return this.informers.every((i) => i.status.synced);
  }

  status(): Partial<Record<WatchedResource, ResourceStatus>> {
    return Object.fromEntries(this.informers.map((i) => [i.resource, { ...i.status }])) as Partial<
      Record<WatchedResource, ResourceStatus>
    >;
  }

  /** Kubernetes events received, by resource and action (for metrics). */
  eventCounts(): Array<{ resource: WatchedResource; action: ChangeAction; count: number }> {
    return [...this.events].map(([k, count]) => {
      const [resource, action] = k.split('|') as [WatchedResource, ChangeAction];
      return { resource, action, count };
    });
  }

  /** Keys ("namespace/name", or name) of the objects of one resource known now. */
  keys(resource: WatchedResource): string[] {
    return this.informers.find((i) => i.resource === resource)?.keys() ?? [];
  }
}

export { objectRef };
