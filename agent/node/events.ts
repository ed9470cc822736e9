/**
 * Kubernetes Events about NetworkPolicies weir cannot enforce as written (an invalid field, an
 * ipBlock that covers pod IPs): `kubectl describe networkpolicy` then shows why. Each problem is
 * reported once per agent; errors of the API call are logged, never fatal.
 */
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { PolicyProblem } from '../policy/index.js';

export const EVENT_COMPONENT = 'weir-agent';

export class PolicyEventRecorder {
  private readonly api: CoreV1Api;
  private readonly reported = new Set<string>();

  constructor(
    kubeConfig: KubeConfig,
    private readonly nodeName: string,
    private readonly onError: (msg: string) => void = () => undefined,
  ) {
    this.api = kubeConfig.makeApiClient(CoreV1Api);
  }

  /** Posts one Event per problem not reported before; resolves when the API answered. */
  async report(problems: PolicyProblem[], severity: 'error' | 'warning'): Promise<number> {
    const fresh = problems.filter((p) => !this.reported.has(`${p.policy}|${p.field}|${p.message}`));
    await Promise.all(fresh.map((p) => this.post(p, severity)));
    return fresh.length;
  }

  /** A Warning Event on this Node: a BPF map is filled to the pressure threshold. */
  async mapPressure(map: string, entries: number, capacity: number): Promise<void> {
    const now = new Date();
    try {
      await this.api.createNamespacedEvent({
        namespace: 'default',
        body: {
          metadata: { generateName: `${this.nodeName}.`, namespace: 'default' },
          involvedObject: { apiVersion: 'v1', kind: 'Node', name: this.nodeName },
          type: 'Warning',
          reason: 'BPFMapPressure',
          message: `BPF map ${map} holds ${entries} of ${capacity} entries: changes that need more room will be refused (the previous, narrower state stays) until entries are removed or the map is made larger`,
          source: { component: EVENT_COMPONENT, host: this.nodeName },
          reportingComponent: EVENT_COMPONENT,
          reportingInstance: this.nodeName,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    } catch (err) {
      this.onError(`could not record a map pressure Event: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private async post(p: PolicyProblem, severity: 'error' | 'warning'): Promise<void> {
    const key = `${p.policy}|${p.field}|${p.message}`;
    this.reported.add(key);
    const [namespace, name] = p.policy.split('/') as [string, string];
    const now = new Date();
    try {
      await this.api.createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${name}.`, namespace },
          involvedObject: { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', name, namespace },
          type: 'Warning',
          reason: severity === 'error' ? 'PolicyRuleRejected' : 'PolicyRuleWarning',
          message: `${p.field}: ${p.message}`,
          source: { component: EVENT_COMPONENT, host: this.nodeName },
          reportingComponent: EVENT_COMPONENT,
          reportingInstance: this.nodeName,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    } catch (err) {
      this.reported.delete(key);
      this.onError(
        `could not record an Event for NetworkPolicy ${p.policy}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }
}
