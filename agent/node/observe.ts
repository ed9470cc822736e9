/**
 * Flows and metrics of the node agent: the datapath's events enriched from the cluster store,
 * the compiler's identities and the discovered pod interfaces; served on `<runDir>/observer.sock`
 * (where `weir observe` looks on the node) and /metrics on the configured port.
 */
import type { Agent } from '../daemon.js';
import type { DatapathEnforcement } from '../enforcement.js';
import type { FlowContext, PodInfo } from '../flows/enrich.js';
import { startObservability, type Observability } from '../observability.js';
import type { PolicyEngine } from '../policy/index.js';
import type { AgentConfig } from './config.js';

function nodeFlowContext(agent: Agent, engine: PolicyEngine, interfaceName: (ifindex: number) => string | undefined): FlowContext {
  let builtAt = -1;
  let byIp = new Map<string, PodInfo>();
  return {
    podByIp(ip) {
      if (builtAt !== agent.revision) {
        byIp = new Map();
        for (const p of agent.store.list('Pod')) for (const a of p.ips) byIp.set(a, { namespace: p.namespace, name: p.name, labels: p.labels });
        builtAt = agent.revision;
      }
      return byIp.get(ip);
    },
    identityLabels: (id) => engine.identity(id)?.labels.map((l) => `k8s:${l}`),
    interfaceName,
    generation: () => agent.revision,
  };
}

export function startNodeObservability(
  config: AgentConfig,
  agent: Agent,
  engine: PolicyEngine,
  enforcement: DatapathEnforcement,
  interfaceName: (ifindex: number) => string | undefined,
): Promise<Observability> {
  const dp = enforcement.datapath;
  return startObservability({
    nodeName: config.nodeName,
    context: nodeFlowContext(agent, engine, interfaceName),
    events: (cb) => dp.onFlowEvents(cb),
    datapath: { readCounters: () => dp.counters(), lostEvents: () => dp.lostEvents() },
    controlPlane: {
      endpointsEnforced: () => {
        let ingress = 0;
        let egress = 0;
        for (const ep of engine.snapshot().endpoints.values()) {
          if (ep.ingressIsolated) ingress++;
          if (ep.egressIsolated) egress++;
        }
        return { ingress, egress };
      },
      identitiesInUse: () => engine.stats.identities,
    },
    ringCapacity: config.flowsCapacity,
    socketPath: `${config.runDir}/observer.sock`,
    metricsPort: config.metricsPort === 0 ? null : config.metricsPort,
  });
}
