/**
 * Flows and metrics for the lab agent: the datapath's events enriched from the lab's store,
 * identities and veths, served on `<runDir>/observer.sock` (where `weir observe` looks) and
 * /metrics on WEIR_LAB_METRICS_PORT (default 9962; a free port when that one is taken).
 */
import type { Agent } from '../daemon.js';
import { DatapathEnforcement } from '../enforcement.js';
import { labObserverSocket } from '../flows/socket.js';
import { fromAgent, startObservability, type Observability } from '../observability.js';
import type { PolicyEngine } from '../policy/engine.js';
import type { LabConfig } from './config.js';
import type { LabRuntime } from './runtime.js';

export const LAB_METRICS_PORT_ENV = 'WEIR_LAB_METRICS_PORT';
const DEFAULT_LAB_METRICS_PORT = 9962;

function isAddrInUse(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE';
}

export async function startLabObservability(
  config: LabConfig,
  agent: Agent,
  engine: PolicyEngine,
  runtime: LabRuntime,
  log: (line: string) => void,
): Promise<Observability> {
  const enforcement = agent.enforcement instanceof DatapathEnforcement ? agent.enforcement : undefined;
  const requested = Number(process.env[LAB_METRICS_PORT_ENV] ?? DEFAULT_LAB_METRICS_PORT);
  const start = (metricsPort: number): Promise<Observability> =>
    startObservability({
      nodeName: config.nodeName,
      ...fromAgent({
        agent,
        engine,
        ...(enforcement ? { enforcement } : {}),
        interfaceName: (ifindex) => runtime.list().find((p) => p.ifindex === ifindex)?.hostVeth,
      }),
      socketPath: labObserverSocket(config.runDir),
      metricsPort,
      metricsHost: '127.0.0.1',
    });
  try {
    return await start(requested);
  } catch (err) {
    if (!isAddrInUse(err) || requested === 0) throw err;
    log(
      `metrics port ${requested} is taken; serving /metrics on a free port instead (set ${LAB_METRICS_PORT_ENV} to choose one)`,
    );
    return start(0);
  }
}
