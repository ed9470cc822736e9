/**
 * Finding the agents: the pods of weir's DaemonSet, listed and then watched through the API
 * (agent/sources/kube-api.ts: plain requests, no client-node models), so a new agent is followed
 * and a deleted one is gone as soon as the API server says so.
 *
 * An agent runs with hostNetwork, so its pod IP is its node's address; its flow API listens on
 * the configured port there. Pods not yet running, without an IP or being deleted are not
 * (yet, or any more) agents.
 *
 * Restart care, as the agent's own informers (agent/sources/kubernetes.ts): the watch asks for
 * bookmarks and a server-side timeout and is reopened from the last resourceVersion seen when the
 * server ends it; 410 Gone relists (a relist replaces the whole set, so what was deleted meanwhile
 * is gone); any other error (a dropped connection, the API away, 403) retries with exponential
 * backoff, resuming the watch where it broke off. A watchdog aborts a watch silent for longer
 * than its timeout (a half-open connection). While the API cannot be reached the previous set is
 * kept: agents are not declared gone because the API is away.
 */
import { Backoff } from '../sources/backoff.js';
import { KubeApi, KubeApiError, type KubeApiConfig, type WatchEvent } from '../sources/kube-api.js';
import type { WireObject } from '../sources/kube-wire.js';
import type { PeerAddress } from './peers.js';

export interface KubernetesDiscoveryOptions {
  /** Server and credentials (agent/sources/kubeconfig.ts). */
  kubeConfig: KubeApiConfig;
  namespace: string;
  /** Label selector of the agents' pods, e.g. "app.kubernetes.io/name=weir,app.kubernetes.io/component=agent". */
  selector: string;
  /** The agents' flow API TCP port. */
  port: number;
  /** Server-side watch timeout; each watch picks a value in [t, 2t) (default 300 s). */
  watchTimeoutSeconds?: number;
  backoff?: { initialMs?: number; maxMs?: number };
  onError?: (message: string) => void;
}

export interface Discovery {
  stop(): void;
  /** Watches opened, relists after 410 Gone, restarts after errors: for tests and logs. */
  readonly counts: { lists: number; watches: number; restarts: number };
}

/** A "host:port" with IPv6 hosts in brackets. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

interface PodWire extends WireObject {
  spec?: { nodeName?: string };
  status?: { podIP?: string; phase?: string };
}

/** The agent a pod is, or undefined while it is none. */
function agentOf(pod: PodWire, port: number): PeerAddress | undefined {
  const node = pod.spec?.nodeName;
  const ip = pod.status?.podIP;
  if (!node || !ip || pod.status?.phase !== 'Running' || pod.metadata?.deletionTimestamp) return undefined;
  return { name: node, address: hostPort(ip, port) };
}

/** The watch ended with 410 Gone: relist. */
class Gone extends Error {}

/**
 * Lists the agents' pods, calls `onPeers` with the agents, then watches and calls it again on
 * every change of the set. Resolves after the first list (or its first failure, which is retried).
 */
export async function startKubernetesDiscovery(
  o: KubernetesDiscoveryOptions,
  onPeers: (peers: PeerAddress[]) => void,
): Promise<Discovery> {
  const api = new KubeApi(o.kubeConfig);
  const path = `/api/v1/namespaces/${encodeURIComponent(o.namespace)}/pods`;
  const backoff = new Backoff({
    initialMs: o.backoff?.initialMs ?? 500,
    maxMs: o.backoff?.maxMs ?? 30_000,
    resetAfterMs: 30_000,
  });
  const counts = { lists: 0, watches: 0, restarts: 0 };
  /** pod name -> its agent (undefined: a pod of the DaemonSet that is not an agent yet). */
  const pods = new Map<string, PeerAddress | undefined>();
  let published = '';
  let resourceVersion: string | undefined;
  let stopped = false;
  let controller: AbortController | undefined;
  let retry: NodeJS.Timeout | undefined;
  let watchdog: NodeJS.Timeout | undefined;

  const publish = () => {
    const peers = [...pods.values()]
      .filter((p): p is PeerAddress => p !== undefined)
      .sort((a, b) => a.name.localeCompare(b.name) || a.address.localeCompare(b.address));
    const key = JSON.stringify(peers);
    if (key === published || stopped) return;
    published = key;
    onPeers(peers);
  };

  const list = async (): Promise<string> => {
    const r = await api.getJson<{ metadata?: { resourceVersion?: string }; items?: PodWire[] }>(path, {
      labelSelector: o.selector,
    });
    counts.lists += 1;
    pods.clear();
    for (const pod of r.items ?? []) pods.set(pod.metadata?.name ?? '', agentOf(pod, o.port));
    resourceVersion = r.metadata?.resourceVersion;
    publish();
    return resourceVersion ?? '';
  };

  const onEvent = (e: WatchEvent) => {
    if (e.type === 'ERROR') {
      const status = e.object as { code?: number; message?: string };
      if (status.code === 410) throw new Gone(status.message ?? 'Gone');
      throw new KubeApiError(`watch error: ${status.message ?? JSON.stringify(e.object)}`, status.code ?? 0);
    }
    resourceVersion = e.object.metadata?.resourceVersion ?? resourceVersion;
    if (e.type === 'BOOKMARK') return;
    const name = e.object.metadata?.name ?? '';
    if (e.type === 'DELETED') pods.delete(name);
    else pods.set(name, agentOf(e.object as PodWire, o.port));
    publish();
  };

  const run = async () => {
    let rv = resourceVersion ?? (await list());
    while (!stopped) {
      const base = o.watchTimeoutSeconds ?? 300;
      const timeout = base + Math.floor(Math.random() * base);
      const c = new AbortController();
      controller = c;
      const arm = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => c.abort(), (timeout + 30) * 1000);
        watchdog.unref();
      };
      arm();
      counts.watches += 1;
      try {
        await api.watch(
          path,
          { labelSelector: o.selector, resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: timeout },
          (e) => {
            arm();
            onEvent(e);
          },
          c.signal,
        );
        rv = resourceVersion ?? rv;
      } catch (err) {
        // 410 as a watch event or as the answer to the watch request: relist
        if (!(err instanceof Gone) && !(err instanceof KubeApiError && err.statusCode === 410)) throw err;
        rv = await list();
      } finally {
        clearTimeout(watchdog);
        c.abort();
      }
    }
  };

  const start = (): void => {
    backoff.started();
    run().catch((err: unknown) => {
      if (stopped) return;
      const delay = backoff.next();
      o.onError?.(
        `watching agent pods in ${o.namespace} (${o.selector}): ${(err as Error).message}; again in ${delay} ms`,
      );
      retry = setTimeout(() => {
        counts.restarts += 1;
        start();
      }, delay);
    });
  };

  // the first list (or its failure) before returning; the watch goes on in the background
  await list().catch((err: unknown) => {
    o.onError?.(`listing agent pods in ${o.namespace} (${o.selector}): ${(err as Error).message}`);
  });
  start();

  return {
    counts,
    stop() {
      stopped = true;
      clearTimeout(retry);
      clearTimeout(watchdog);
      controller?.abort();
      api.destroy();
    },
  };
}
