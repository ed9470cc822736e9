/**
 * Kubernetes Events about NetworkPolicies weir cannot enforce as written (an invalid field, an
 * ipBlock that covers pod IPs): `kubectl describe networkpolicy` then shows why. Each problem is
 * reported once per agent; errors of the API call are logged, never fatal.
 */
import { KubeApi, type KubeApiConfig } from '../sources/kube-api.js';
import type { PolicyProblem } from '../policy/index.js';

export const EVENT_COMPONENT = 'weir-agent';

export class PolicyEventRecorder {
  private readonly api: KubeApi;
  private readonly reported = new Set<string>();

  constructor(
    kubeConfig: KubeApiConfig,
    private readonly nodeName: string,
    private readonly onError: (msg: string) => void = () => undefined,
  ) {
    this.api = new KubeApi(kubeConfig);
  }

  /** Posts one Event per problem not reported before; resolves when the API answered. */
  async report(problems: PolicyProblem[], severity: 'error' | 'warning'): Promise<number> {
    const fresh = problems.filter((p) => !this.reported.has(`${p.policy}|${p.field}|${p.message}`));
    await Promise.all(fresh.map((p) => this.post(p, severity)));
    return fresh.length;
  }

  /** A Warning Event on this Node: a BPF map is filled to the pressure threshold. */
  async mapPressure(map: string, entries: number, capacity: number): Promise<void> {
    try {
      await this.postNodeEvent(
        'BPFMapPressure',
        `BPF map ${map} holds ${entries} of ${capacity} entries: changes that need more room will be refused (the previous, narrower state stays) until entries are removed or the map is made larger`,
      );
    } catch (err) {
      this.onError(`could not record a map pressure Event: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /**
   * A Warning Event on this node's Node object (namespace "default", where `kubectl get events`
   * shows node events) naming what the API server refused: verb and resource. Once per episode:
   * `permissionRestored` re-arms it.
   */
  async reportMissingPermission(verb: string, resource: string, message: string): Promise<boolean> {
    const key = `permission|${verb}|${resource}`;
    if (this.reported.has(key)) return false;
    this.reported.add(key);
    try {
      await this.postNodeEvent(
        'MissingPermission',
        `weir-agent may not ${verb} ${resource} (403 Forbidden: ${message}); the node keeps enforcing its last known state and is not ready. Grant the weir ClusterRole the verbs list and watch on ${resource}.`,
      );
      return true;
    } catch (err) {
      this.reported.delete(key);
      this.onError(
        `could not record an Event for the missing permission ${verb} ${resource}: ${err instanceof Error ? err.message : String(err)}`,
      );
      return false;
    }
  }

  /** The permission is back: a later refusal is reported again. */
  permissionRestored(verb: string, resource: string): void {
    this.reported.delete(`permission|${verb}|${resource}`);
  }

  private async post(p: PolicyProblem, severity: 'error' | 'warning'): Promise<void> {
    const key = `${p.policy}|${p.field}|${p.message}`;
    this.reported.add(key);
    const [namespace, name] = p.policy.split('/') as [string, string];
    try {
      await this.postEvent(
        namespace,
        name,
        { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', name, namespace },
        severity === 'error' ? 'PolicyRuleRejected' : 'PolicyRuleWarning',
        `${p.field}: ${p.message}`,
      );
    } catch (err) {
      this.reported.delete(key);
      this.onError(
        `could not record an Event for NetworkPolicy ${p.policy}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }

  /** A Warning Event on this node's Node object (namespace "default", where node events live). */
  private postNodeEvent(reason: string, message: string): Promise<unknown> {
    return this.postEvent(
      'default',
      this.nodeName,
      { apiVersion: 'v1', kind: 'Node', name: this.nodeName },
      reason,
      message,
    );
  }

  private postEvent(
    namespace: string,
    namePrefix: string,
    involvedObject: Record<string, string>,
    reason: string,
    message: string,
  ): Promise<unknown> {
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    return this.api.postJson(`/api/v1/namespaces/${encodeURIComponent(namespace)}/events`, {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${namePrefix}.`, namespace },
      involvedObject,
      type: 'Warning',
      reason,
      message,
      source: { component: EVENT_COMPONENT, host: this.nodeName },
      reportingComponent: EVENT_COMPONENT,
      reportingInstance: this.nodeName,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    });
  }
}
