/**
 * Flows and metrics for the lab agent: the datapath's events enriched from the lab's store,
 * identities and veths, served on `<runDir>/observer.sock` (where `weir observe` looks) and
 * /metrics on 127.0.0.1: the port asked for (`--metrics-port`, WEIR_LAB_METRICS_PORT), else 9962,
 * or a free port when 9962 is taken.
 */
import type { Agent } from '../daemon.js';
import { DatapathEnforcement } from '../enforcement.js';
import { labObserverSocket } from '../flows/socket.js';
import { fromAgent, startObservability, type Observability } from '../observability.js';
import type { PolicyEngine } from '../policy/engine.js';
import type { PodMetricsOptions } from '../metrics/metrics.js';
import type { LabConfig } from './config.js';
import type { LabRuntime } from './runtime.js';

export const LAB_METRICS_PORT_ENV = 'WEIR_LAB_METRICS_PORT';
export const DEFAULT_LAB_METRICS_PORT = 9962;

function isAddrInUse(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE';
}

export interface LabMetricsOptions {
  /** Asked for (flag or WEIR_LAB_METRICS_PORT): used as it is, an error when taken; 0 = any free port. */
  port?: number;
  podMetrics?: PodMetricsOptions;
}

export interface LabObservability extends Observability {
  /** The default port, when it was taken and another was chosen. */
  metricsPortTaken?: number;
}

/** The port asked for: the flag, else WEIR_LAB_METRICS_PORT, else none (the default applies). */
export function requestedMetricsPort(
  flag: number | undefined,
  env: NodeJS.ProcessEnv = process.env,
): number | undefined {
  if (flag !== undefined) return flag;
  const v = env[LAB_METRICS_PORT_ENV];
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v) || Number(v) > 65535)
    throw new Error(`${LAB_METRICS_PORT_ENV}=${v} is not a port number (0-65535)`);
  return Number(v);
}

export async function startLabObservability(
  config: LabConfig,
  agent: Agent,
  engine: PolicyEngine,
  runtime: LabRuntime,
  log: (line: string) => void,
  metrics: LabMetricsOptions = {},
): Promise<LabObservability> {
  const enforcement = agent.enforcement instanceof DatapathEnforcement ? agent.enforcement : undefined;
  const start = (metricsPort: number): Promise<Observability> =>
    startObservability({
      nodeName: config.nodeName,
      ...fromAgent({
        agent,
        engine,
        ...(enforcement ? { enforcement } : {}),
        interfaceName: (ifindex) => runtime.list().find((p) => p.ifindex === ifindex)?.hostVeth,
        podKeyOnInterface: (ifindex) => {
          const p = runtime.list().find((q) => q.ifindex === ifindex);
          return p ? `${p.namespace}/${p.name}` : undefined;
        },
      }),
      socketPath: labObserverSocket(config.runDir),
      metricsPort,
      metricsHost: '127.0.0.1',
      ...(metrics.podMetrics ? { podMetrics: metrics.podMetrics } : {}),
    });
  if (metrics.port !== undefined) return start(metrics.port);
  try {
    return await start(DEFAULT_LAB_METRICS_PORT);
  } catch (err) {
    if (!isAddrInUse(err)) throw err;
    const obs = await start(0);
    log(
      `metrics port ${DEFAULT_LAB_METRICS_PORT} is taken; serving ${obs.metricsUrl} instead (choose one with --metrics-port)`,
    );
    return { ...obs, metricsPortTaken: DEFAULT_LAB_METRICS_PORT };
  }
}
