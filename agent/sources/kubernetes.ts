/**
 * The Kubernetes source: client-node informers for Namespaces, Pods (every node: the ipcache needs
 * remote pods), NetworkPolicies and Nodes, turned into one stream of changes for the Store.
 *
 * - client-node relists by itself on 410 Gone but stops an informer on any other error (a dropped
 *   connection, a refused list): this source restarts it with exponential backoff. The restarted
 *   informer keeps its cache, so its relist reports as deletions what was deleted meanwhile.
 * - Watches ask for bookmarks and a server-side timeout (as client-go does), and a watchdog aborts
 *   a watch that has been silent for longer than that, so a half-open connection cannot hang it.
 * - `synced` resolves once every informer has completed its first list.
 */
import {
  CoreV1Api,
  KubeConfig,
  ListWatch,
  NetworkingV1Api,
  Watch,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { Backoff } from './backoff.js';
import { objectRef, slim, toWire, type WireObject } from './kube-wire.js';

export type WatchedResource = 'namespaces' | 'pods' | 'networkpolicies' | 'nodes';
export type ChangeAction = 'add' | 'update' | 'delete';

export const WATCHED_RESOURCES: readonly WatchedResource[] = ['namespaces', 'nodes', 'pods', 'networkpolicies'];

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
  kubeConfig: KubeConfig;
  /** Receives every change, in order per resource. */
  onChange: (change: KubernetesChange) => void;
  /** Called for every error before the informer is restarted (for logs). */
  onError?: (resource: WatchedResource, err: Error, retryInMs: number) => void;
  backoff?: { initialMs?: number; maxMs?: number };
  /** Server-side watch timeout; each watch picks a value in [t, 2t) (client-go does the same). */
  watchTimeoutSeconds?: number;
  /** Page size of the initial list and relists. */
  pageSize?: number;
}

interface KindInfo {
  path: string;
  kind: string;
  apiVersion: string;
  list: (api: Apis, page: { limit: number; _continue?: string }) => Promise<KubernetesListObject<KubernetesObject>>;
}

interface Apis {
  core: CoreV1Api;
  net: NetworkingV1Api;
}

const KINDS: Record<WatchedResource, KindInfo> = {
  namespaces: {
    path: '/api/v1/namespaces',
    kind: 'Namespace',
    apiVersion: 'v1',
    list: (a, p) => a.core.listNamespace(p),
  },
  nodes: { path: '/api/v1/nodes', kind: 'Node', apiVersion: 'v1', list: (a, p) => a.core.listNode(p) },
  pods: { path: '/api/v1/pods', kind: 'Pod', apiVersion: 'v1', list: (a, p) => a.core.listPodForAllNamespaces(p) },
  networkpolicies: {
    path: '/apis/networking.k8s.io/v1/networkpolicies',
    kind: 'NetworkPolicy',
    apiVersion: 'networking.k8s.io/v1',
    list: (a, p) => a.net.listNetworkPolicyForAllNamespaces(p),
  },
};

function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (err && typeof err === 'object') {
    const o = err as { message?: unknown; code?: unknown; statusCode?: unknown };
    if (typeof o.message === 'string') return o.message;
    if (o.code !== undefined || o.statusCode !== undefined) return `HTTP ${String(o.code ?? o.statusCode)}`;
  }
  return String(err);
}

/**
 * A 403 Forbidden from the API server (RBAC), with the verb refused: from the Status message
 * ("cannot list resource ...") when there is one (a list), else a refused watch.
 */
function forbiddenOf(err: unknown, resource: WatchedResource): ResourceStatus['forbidden'] {
  if (!err || typeof err !== 'object') return undefined;
  const o = err as { code?: unknown; statusCode?: unknown; body?: unknown };
  if (o.code !== 403 && o.statusCode !== 403) return undefined;
  let message = '';
  const body = typeof o.body === 'string' ? o.body : o.body !== undefined ? JSON.stringify(o.body) : '';
  try {
    const parsed = JSON.parse(body) as { message?: unknown };
    if (typeof parsed.message === 'string') message = parsed.message;
  } catch {
    message = body;
  }
  const verb = /cannot (\w+) resource/.exec(message)?.[1] ?? (o.statusCode === 403 ? 'watch' : 'list');
  return { verb, resource, message: message || `${resource} is forbidden (403)` };
}

/**
 * client-node's Watch with the parameters a long-running agent needs: bookmarks, a server-side
 * timeout, and a client-side watchdog (abort after the timeout plus a grace period of silence).
 */
class AgentWatch extends Watch {
  private controller: AbortController | undefined;
  private watchdog: NodeJS.Timeout | undefined;

  constructor(
    kc: KubeConfig,
    private readonly timeoutSeconds: number,
    private readonly onOpen: () => void,
    private readonly onClose: () => void,
    private readonly onEvent: () => void = () => undefined,
  ) {
    super(kc);
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const timeout = this.timeoutSeconds + Math.floor(Math.random() * this.timeoutSeconds);
    const arm = (): void => {
      clearTimeout(this.watchdog);
      this.watchdog = setTimeout(() => this.controller?.abort(), (timeout + 30) * 1000);
      this.watchdog.unref();
    };
    this.onOpen();
    arm();
    this.controller = await super.watch(
      path,
      { ...queryParams, allowWatchBookmarks: true, timeoutSeconds: timeout },
      (phase, obj, raw) => {
        arm();
        if (phase !== 'ERROR') this.onEvent();
        callback(
          phase,
          obj !== null && typeof obj === 'object' && phase !== 'ERROR' ? slim(obj as WireObject) : obj,
          raw,
        );
      },
      (err) => {
        clearTimeout(this.watchdog);
        this.onClose();
        done(err);
      },
    );
    return this.controller;
  }

  cancel(): void {
    clearTimeout(this.watchdog);
    this.controller?.abort();
  }
}

class ResourceInformer {
  readonly status: ResourceStatus = { synced: false, watching: false, restarts: 0 };
  private readonly informer: ListWatch<KubernetesObject>;
  private readonly watch: AgentWatch;
  private readonly backoff: Backoff;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    readonly resource: WatchedResource,
    kc: KubeConfig,
    apis: Apis,
    private readonly opts: KubernetesSourceOptions,
    private readonly onSynced: () => void,
  ) {
    const info = KINDS[resource];
    const pageSize = opts.pageSize ?? 500;
    this.backoff = new Backoff({
      initialMs: opts.backoff?.initialMs ?? 500,
      maxMs: opts.backoff?.maxMs ?? 30_000,
      resetAfterMs: 30_000,
    });
    this.watch = new AgentWatch(
      kc,
      opts.watchTimeoutSeconds ?? 300,
      () => {
        // ListWatch opens a watch only after its list has been applied to the cache.
        this.status.watching = true;
        if (!this.status.synced) {
          this.status.synced = true;
          this.onSynced();
        }
      },
      () => {
        this.status.watching = false;
      },
      () => {
        if (this.status.forbidden?.verb === 'watch') delete this.status.forbidden;
      },
    );
    const listFn = async (): Promise<KubernetesListObject<KubernetesObject>> => {
      const first = await info.list(apis, { limit: pageSize });
      if (this.status.forbidden?.verb === 'list') delete this.status.forbidden;
      const items = [...first.items];
      let cont = first.metadata?._continue;
      while (cont) {
        const page = await info.list(apis, { limit: pageSize, _continue: cont });
        items.push(...page.items);
        cont = page.metadata?._continue;
      }
      return { ...first, items: items.map((i) => this.wire(i) as KubernetesObject) };
    };
    this.informer = new ListWatch<KubernetesObject>(info.path, this.watch, listFn, false);
    // Everything in the informer's cache is wire JSON already: list items were converted above,
    // watch events arrive raw. Only kind/apiVersion may be missing (list items carry none).
    const emit = (action: ChangeAction) => (obj: KubernetesObject) => {
      if (!this.stopped) opts.onChange({ resource, action, object: this.labelled(obj as WireObject) });
    };
    this.informer.on('add', emit('add'));
    this.informer.on('update', emit('update'));
    this.informer.on('delete', emit('delete'));
    this.informer.on('error', (err: unknown) => this.failed(err));
  }

  /** Wire JSON with kind/apiVersion (list items come without them). */
  private wire(obj: unknown): WireObject {
    return slim(this.labelled(toWire(obj) as WireObject));
  }

  private labelled(obj: WireObject): WireObject {
    const info = KINDS[this.resource];
    return obj.kind === info.kind && obj.apiVersion === info.apiVersion
      ? obj
      : { ...obj, kind: info.kind, apiVersion: info.apiVersion };
  }

  start(): void {
    this.stopped = false;
    this.backoff.started();
    this.informer.start().catch((err: unknown) => this.failed(err));
  }

  private failed(err: unknown): void {
    this.status.watching = false;
    if (this.stopped) return;
    const error = err instanceof Error ? err : new Error(errorMessage(err));
    this.status.lastError = errorMessage(err);
    const forbidden = forbiddenOf(err, this.resource);
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

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await this.informer.stop();
    this.watch.cancel();
  }

  cached(): WireObject[] {
    return this.informer.list().map((o) => this.labelled(o as WireObject));
  }
}

export class KubernetesSource {
  private readonly informers: ResourceInformer[];
  private resolveSynced!: () => void;
  /** Resolves when every resource has been listed once and its change events delivered. */
  readonly synced: Promise<void>;
  private readonly events = new Map<string, number>();

  constructor(private readonly opts: KubernetesSourceOptions) {
    this.synced = new Promise((r) => (this.resolveSynced = r));
    const apis: Apis = {
      core: opts.kubeConfig.makeApiClient(CoreV1Api),
      net: opts.kubeConfig.makeApiClient(NetworkingV1Api),
    };
    const counted: KubernetesSourceOptions = {
      ...opts,
      onChange: (c) => {
        const k = `${c.resource}|${c.action}`;
        this.events.set(k, (this.events.get(k) ?? 0) + 1);
        opts.onChange(c);
      },
    };
    this.informers = WATCHED_RESOURCES.map(
      (r) =>
        new ResourceInformer(r, opts.kubeConfig, apis, counted, () => {
          if (this.informers.every((i) => i.status.synced)) this.resolveSynced();
        }),
    );
  }

  start(): void {
    for (const i of this.informers) i.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  get isSynced(): boolean {
    return this.informers.every((i) => i.status.synced);
  }

  status(): Record<WatchedResource, ResourceStatus> {
    return Object.fromEntries(this.informers.map((i) => [i.resource, { ...i.status }])) as Record<
      WatchedResource,
      ResourceStatus
    >;
  }

  /** Kubernetes events received, by resource and action (for metrics). */
  eventCounts(): Array<{ resource: WatchedResource; action: ChangeAction; count: number }> {
    return [...this.events].map(([k, count]) => {
      const [resource, action] = k.split('|') as [WatchedResource, ChangeAction];
      return { resource, action, count };
    });
  }

  /** What the informers hold now, for a full resync. */
  snapshot(resource: WatchedResource): WireObject[] {
    return this.informers.find((i) => i.resource === resource)!.cached();
  }
}

export { objectRef };
