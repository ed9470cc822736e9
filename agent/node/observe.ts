/**
 * Flows and metrics of the node agent: the datapath's events enriched from the cluster store,
 * the compiler's identities and the discovered pod interfaces; served on `<runDir>/observer.sock`
 * (where `weir observe` looks on the node) and /metrics on the configured port.
 */
import { readFileSync } from 'node:fs';
import type { Agent } from '../daemon.js';
import type { DatapathEnforcement } from '../enforcement.js';
import { fromAgent, startObservability, type Observability } from '../observability.js';
import type { PolicyEngine } from '../policy/index.js';
import type { AgentConfig } from './config.js';
import type { OffLoopHost } from '../offloop.js';

export function startNodeObservability(
  config: AgentConfig,
  agent: Agent,
  engine: PolicyEngine,
  enforcement: DatapathEnforcement,
  interfaceName: (ifindex: number) => string | undefined,
  podKeyOnInterface: (ifindex: number) => string | undefined,
  offLoop: OffLoopHost,
): Promise<Observability> {
  return startObservability({
    nodeName: config.nodeName,
    ...fromAgent({ agent, engine, enforcement, interfaceName, podKeyOnInterface }),
    ringCapacity: config.flowsCapacity,
    socketPath: `${config.runDir}/observer.sock`,
    ...(config.observerAddress
      ? {
          tcpAddress: config.observerAddress,
          tls: {
            ca: readFileSync(config.observerTlsCa),
            cert: readFileSync(config.observerTlsCert),
            key: readFileSync(config.observerTlsKey),
          },
        }
      : {}),
    metricsPort: config.metricsPort === 0 ? null : config.metricsPort,
    metricsOffLoop: offLoop,
    podMetrics: { enabled: config.podMetrics, maxPods: config.podMetricsMaxPods },
  });
}
