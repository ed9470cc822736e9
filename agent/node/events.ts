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

  private async post(p: PolicyProblem, severity: 'error' | 'warning'): Promise<void> {
    const key = `${p.policy}|${p.field}|${p.message}`;
    this.reported.add(key);
    const [namespace, name] = p.policy.split('/') as [string, string];
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    try {
      await this.api.postJson(`/api/v1/namespaces/${encodeURIComponent(namespace)}/events`, {
        apiVersion: 'v1',
        kind: 'Event',
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
      });
    } catch (err) {
      this.reported.delete(key);
      this.onError(
        `could not record an Event for NetworkPolicy ${p.policy}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }
}
