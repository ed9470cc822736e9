/**
 * What a stopping agent does with the datapath: on SIGTERM it asks the API for its own pod's owning
 * DaemonSet. Gone, or being deleted (a deletionTimestamp): the chart is being uninstalled, and the
 * agent detaches its programs and removes its pins (`cleanupNode`). Present: an upgrade, a rollout
 * restart or an eviction; everything stays pinned and attached, so enforcement never pauses.
 *
 * `helm uninstall` deletes the ClusterRoleBinding and the ServiceAccount right after the DaemonSet,
 * before the kubelet stops the pods, so at SIGTERM the API usually refuses the agent (401/403).
 * `OwnerWatch` therefore follows the DaemonSet from the start over one long-lived watch (an open
 * watch is not re-authorized); when the lookup at SIGTERM cannot get an answer, a deletion that
 * watch saw decides. Any other doubt — no pod name, no owner, no answer and no deletion seen, a
 * DaemonSet of the same name with another uid (a reinstall, whose agents adopt the pins) — keeps
 * everything in place: a stop never removes enforcement unless the DaemonSet's deletion is certain.
 */
import { KubeApi, type KubeApiConfig } from '../sources/kube-api.js';

/** What the agent reads of a DaemonSet (wire JSON). */
interface DaemonSet {
  metadata?: { name?: string; uid?: string; deletionTimestamp?: string; resourceVersion?: string };
}

interface PodMeta {
  metadata?: { ownerReferences?: Array<{ kind?: string; apiVersion?: string; name: string; uid: string }> };
}

const apis = new WeakMap<KubeApiConfig, KubeApi>();
/** One KubeApi (one keep-alive agent) per credentials. */
function apiOf(kc: KubeApiConfig): KubeApi {
  let api = apis.get(kc);
  if (!api) apis.set(kc, (api = new KubeApi(kc)));
  return api;
}

export interface StopDecision {
  /** Detach and unpin. */
  cleanup: boolean;
  /** Why, for the log. */
  reason: string;
}

export interface OwnerLookup {
  kubeConfig: KubeApiConfig;
  podName: string;
  podNamespace: string;
  /** Give up asking (and keep everything, unless the watch saw a deletion) after this long; default 5 s. */
  timeoutMs?: number;
  /** The DaemonSet followed since start. */
  watch?: OwnerWatch;
}

interface Owner {
  name: string;
  uid: string;
}

type Answer =
  | { kind: 'decided'; decision: StopDecision }
  /** The API gave no answer: the watch may still know. */
  | { kind: 'unknown'; reason: string };

const keep = (reason: string): StopDecision => ({ cleanup: false, reason });

function statusCode(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  const code = e?.statusCode ?? e?.code;
  return typeof code === 'number' ? code : undefined;
}

function describe(err: unknown): string {
  const code = statusCode(err);
  if (code !== undefined) return `HTTP ${code}`;
  return err instanceof Error ? err.message : String(err);
}

/** The DaemonSet that owns the pod; undefined when none does; throws when the API does not answer. */
async function findOwner(kc: KubeApiConfig, podNamespace: string, podName: string): Promise<Owner | undefined> {
  const pod = await apiOf(kc).getJson<PodMeta>(
    `/api/v1/namespaces/${encodeURIComponent(podNamespace)}/pods/${encodeURIComponent(podName)}`,
  );
  const ref = pod.metadata?.ownerReferences?.find((r) => r.kind === 'DaemonSet' && r.apiVersion === 'apps/v1');
  return ref ? { name: ref.name, uid: ref.uid } : undefined;
}

/** Deleted or being deleted, judged from one state of the DaemonSet (undefined = not there). */
function deletionOf(owner: Owner, ds: DaemonSet | undefined, where: string): Answer {
  if (!ds) return { kind: 'decided', decision: { cleanup: true, reason: `DaemonSet ${where} is gone` } };
  if (ds.metadata?.uid !== undefined && ds.metadata.uid !== owner.uid)
    return {
      kind: 'decided',
      decision: keep(`DaemonSet ${where} was replaced by a new one (uid ${ds.metadata.uid}), which adopts the pins`),
    };
  if (ds.metadata?.deletionTimestamp)
    return { kind: 'decided', decision: { cleanup: true, reason: `DaemonSet ${where} is being deleted` } };
  return { kind: 'decided', decision: keep(`DaemonSet ${where} is present (upgrade, restart or eviction)`) };
}

async function ask(o: OwnerLookup): Promise<Answer> {
  if (!o.podName || !o.podNamespace)
    return {
      kind: 'decided',
      decision: keep('own pod unknown (POD_NAME / POD_NAMESPACE not set), so its DaemonSet cannot be checked'),
    };
  let owner: Owner | undefined;
  try {
    owner = await findOwner(o.kubeConfig, o.podNamespace, o.podName);
  } catch (err) {
    return { kind: 'unknown', reason: `could not read pod ${o.podNamespace}/${o.podName} (${describe(err)})` };
  }
  if (!owner)
    return { kind: 'decided', decision: keep(`pod ${o.podNamespace}/${o.podName} is not owned by a DaemonSet`) };
  const where = `${o.podNamespace}/${owner.name}`;
  try {
    const ds = await apiOf(o.kubeConfig).getJson<DaemonSet>(
      `/apis/apps/v1/namespaces/${encodeURIComponent(o.podNamespace)}/daemonsets/${encodeURIComponent(owner.name)}`,
    );
    return deletionOf(owner, ds, where);
  } catch (err) {
    if (statusCode(err) === 404) return deletionOf(owner, undefined, where);
    return { kind: 'unknown', reason: `could not read DaemonSet ${where} (${describe(err)})` };
  }
}

/** Decides whether this stop is an uninstall. Never throws; without certainty it keeps enforcement. */
export async function decideOnStop(o: OwnerLookup): Promise<StopDecision> {
  const ms = o.timeoutMs ?? 5000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Answer>((resolve) => {
    timer = setTimeout(() => resolve({ kind: 'unknown', reason: `the API server did not answer within ${ms} ms` }), ms);
  });
  let answer: Answer;
  try {
    answer = await Promise.race([
      ask(o).catch((err: unknown): Answer => ({ kind: 'unknown', reason: describe(err) })),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
  if (answer.kind === 'decided') return answer.decision;
  const seen = o.watch?.deletionSeen;
  if (seen) return { cleanup: true, reason: `${seen} (${answer.reason})` };
  return keep(answer.reason);
}

/**
 * Follows the agent's own DaemonSet (list, then watch by name; started again after any error) and
 * remembers whether it was seen deleted or being deleted.
 */
export class OwnerWatch {
  private owner?: Owner;
  private seen?: string;
  private abort?: AbortController;
  private stopped = false;
  private wake?: () => void;

  constructor(
    private readonly o: Pick<OwnerLookup, 'kubeConfig' | 'podName' | 'podNamespace'>,
    private readonly log: (line: string) => void = () => undefined,
    private readonly retryMs = 2000,
  ) {}

  /** "DaemonSet NS/NAME was deleted" once the watch saw it deleted or being deleted. */
  get deletionSeen(): string | undefined {
    return this.seen;
  }

  start(): void {
    if (!this.o.podName || !this.o.podNamespace) return;
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
    this.wake?.();
  }

  private observe(ds: DaemonSet | undefined, deleted = false): void {
    const owner = this.owner!;
    const where = `${this.o.podNamespace}/${owner.name}`;
    if (ds?.metadata?.uid !== undefined && ds.metadata.uid !== owner.uid) return; // another DaemonSet
    if (!ds || deleted) this.seen = `DaemonSet ${where} was deleted (seen by the watch)`;
    else if (ds.metadata?.deletionTimestamp) this.seen = `DaemonSet ${where} is being deleted (seen by the watch)`;
    else this.seen = undefined;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        this.owner ??= await findOwner(this.o.kubeConfig, this.o.podNamespace, this.o.podName);
        if (!this.owner) return; // not run by a DaemonSet: nothing to follow
        await this.follow(this.owner);
      } catch (err) {
        this.log(`following the agent's DaemonSet: ${describe(err)}; again in ${this.retryMs} ms`);
      }
      if (this.stopped) return;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.retryMs);
        t.unref();
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  /** One list + watch; resolves when the watch ends (then the loop lists again). */
  private async follow(owner: Owner): Promise<void> {
    const ns = this.o.podNamespace;
    const fieldSelector = `metadata.name=${owner.name}`;
    const api = apiOf(this.o.kubeConfig);
    const path = `/apis/apps/v1/namespaces/${encodeURIComponent(ns)}/daemonsets`;
    const list = await api.getJson<{ metadata?: { resourceVersion?: string }; items?: DaemonSet[] }>(path, {
      fieldSelector,
    });
    this.observe((list.items ?? []).find((d) => d.metadata?.name === owner.name));
    if (this.stopped) return;
    const abort = new AbortController();
    this.abort = abort;
    await api.watch(
      path,
      {
        fieldSelector,
        resourceVersion: list.metadata?.resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: 300,
      },
      (e) => {
        if (e.type === 'DELETED') this.observe(e.object as DaemonSet, true);
        else if (e.type === 'ADDED' || e.type === 'MODIFIED') this.observe(e.object as DaemonSet);
      },
      abort.signal,
    );
  }
}
