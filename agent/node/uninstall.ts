/**
 * What a stopping agent does with the datapath: on SIGTERM it reads its own pod's owning DaemonSet
 * from the API. Gone, or being deleted (a deletionTimestamp): the chart is being uninstalled, and
 * the agent detaches its programs and removes its pins (`cleanupNode`). Present: an upgrade, a
 * rollout restart or a drained node; everything stays pinned and attached, so enforcement never
 * pauses. Any doubt — no pod name, no owner, an API error or timeout, a DaemonSet of the same name
 * with another uid (a reinstall, whose agents adopt the pins) — keeps everything in place: a stop
 * never removes enforcement unless the DaemonSet's deletion is certain.
 */
import { AppsV1Api, CoreV1Api, type KubeConfig, type V1OwnerReference } from '@kubernetes/client-node';

export interface StopDecision {
  /** Detach and unpin. */
  cleanup: boolean;
  /** Why, for the log. */
  reason: string;
}

export interface OwnerLookup {
  kubeConfig: KubeConfig;
  podName: string;
  podNamespace: string;
  /** Give up (and keep everything) after this long; default 5 s. */
  timeoutMs?: number;
}

const keep = (reason: string): StopDecision => ({ cleanup: false, reason });

function statusCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

function describe(err: unknown): string {
  const code = statusCode(err);
  if (code !== undefined) return `HTTP ${code}`;
  return err instanceof Error ? err.message : String(err);
}

async function lookup(o: OwnerLookup): Promise<StopDecision> {
  if (!o.podName || !o.podNamespace)
    return keep('own pod unknown (POD_NAME / POD_NAMESPACE not set), so its DaemonSet cannot be checked');
  const core = o.kubeConfig.makeApiClient(CoreV1Api);
  let owner: V1OwnerReference | undefined;
  try {
    const pod = await core.readNamespacedPod({ name: o.podName, namespace: o.podNamespace });
    owner = pod.metadata?.ownerReferences?.find((r) => r.kind === 'DaemonSet' && r.apiVersion === 'apps/v1');
  } catch (err) {
    return keep(`could not read pod ${o.podNamespace}/${o.podName} (${describe(err)})`);
  }
  if (!owner) return keep(`pod ${o.podNamespace}/${o.podName} is not owned by a DaemonSet`);
  const ds = `${o.podNamespace}/${owner.name}`;
  const apps = o.kubeConfig.makeApiClient(AppsV1Api);
  try {
    const d = await apps.readNamespacedDaemonSet({ name: owner.name, namespace: o.podNamespace });
    if (d.metadata?.uid !== undefined && d.metadata.uid !== owner.uid)
      return keep(`DaemonSet ${ds} was replaced by a new one (uid ${d.metadata.uid}), which adopts the pins`);
    if (d.metadata?.deletionTimestamp) return { cleanup: true, reason: `DaemonSet ${ds} is being deleted` };
    return keep(`DaemonSet ${ds} is present (upgrade, restart or eviction)`);
  } catch (err) {
    if (statusCode(err) === 404) return { cleanup: true, reason: `DaemonSet ${ds} is gone` };
    return keep(`could not read DaemonSet ${ds} (${describe(err)})`);
  }
}

/** Decides whether this stop is an uninstall. Never throws; any failure keeps enforcement. */
export async function decideOnStop(o: OwnerLookup): Promise<StopDecision> {
  const ms = o.timeoutMs ?? 5000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<StopDecision>((resolve) => {
    timer = setTimeout(() => resolve(keep(`the API server did not answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([lookup(o).catch((err: unknown) => keep(describe(err))), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
