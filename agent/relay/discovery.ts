/**
 * Finding the agents: the pods of weir's DaemonSet, listed through the API every few seconds.
 * An agent runs with hostNetwork, so its pod IP is its node's address; its flow API listens on
 * the configured port there. Pods not yet running or without an IP are not (yet) agents. A
 * failed list keeps the previous set (agents are not declared gone because the API is away).
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { PeerAddress } from './peers.js';

export interface KubernetesDiscoveryOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** Label selector of the agents' pods, e.g. "app.kubernetes.io/name=weir,app.kubernetes.io/component=agent". */
  selector: string;
  /** The agents' flow API TCP port. */
  port: number;
  intervalMs?: number;
  onError?: (message: string) => void;
}

export interface Discovery {
  stop(): void;
}

/** A "host:port" with IPv6 hosts in brackets. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export async function startKubernetesDiscovery(
  o: KubernetesDiscoveryOptions,
  onPeers: (peers: PeerAddress[]) => void,
): Promise<Discovery> {
  const { CoreV1Api } = await import('@kubernetes/client-node');
  const api = o.kubeConfig.makeApiClient(CoreV1Api);
  let stopped = false;
  const once = async () => {
    try {
      const list = await api.listNamespacedPod({ namespace: o.namespace, labelSelector: o.selector });
      const peers: PeerAddress[] = [];
      for (const pod of list.items) {
        const node = pod.spec?.nodeName;
        const ip = pod.status?.podIP;
        if (!node || !ip || pod.status?.phase !== 'Running' || pod.metadata?.deletionTimestamp) continue;
        peers.push({ name: node, address: hostPort(ip, o.port) });
      }
      if (!stopped) onPeers(peers);
    } catch (e) {
      o.onError?.(`listing agent pods in ${o.namespace} (${o.selector}): ${(e as Error).message}`);
    }
  };
  await once();
  const timer = setInterval(() => void once(), o.intervalMs ?? 5000);
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
