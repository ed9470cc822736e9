/**
 * Flows and metrics for one agent (node daemon or lab), started with one call:
 *
 *   const obs = await startObservability({ nodeName, context, datapath, events });
 *   // obs.flowApi: ["unix:/run/weir/observer.sock"], obs.metricsUrl: "http://127.0.0.1:9962/metrics"
 *   await obs.close();
 */
import type { FlowEvent } from './flows/event.js';
import type { FlowContext } from './flows/enrich.js';
import { Observer } from './flows/observer.js';
import { startObserverServer, type ObserverServer, type TlsFiles } from './flows/server.js';
import { AGENT_OBSERVER_SOCKET } from './flows/socket.js';
import { WeirMetrics, type PodMetricsOptions } from './metrics/metrics.js';
import {
  DEFAULT_METRICS_PORT,
  startMetricsServer,
  startMetricsServerOffLoop,
  type MetricsServer,
} from './metrics/server.js';
import type { ControlPlaneStats, DatapathStats } from './metrics/sources.js';
import type { OffLoopHost } from './offloop.js';
import { recordAgentEvents, type AgentEventsLike } from './metrics/agent-events.js';
import { datapathMapUsage } from './metrics/map-usage.js';
import { EngineFlowContext } from './flows/engine-context.js';
import type { ServicesCompiler } from './services/index.js';
import { frontendKey, type L4Protocol } from './desired.js';

/** IP protocol numbers of the L4 protocols Services balance. */
const IP_PROTOCOL_NAMES: Readonly<Record<number, L4Protocol>> = { 6: 'TCP', 17: 'UDP', 132: 'SCTP' };
import type { Agent } from './daemon.js';
import type { DatapathEnforcement } from './enforcement.js';
import type { PolicyEngine } from './policy/engine.js';

/** A source of decoded flow events (the datapath's ring buffer reader). */
export type FlowEventSource = (onBatch: (events: FlowEvent[]) => void) => { close(): void };

export interface ObservabilityOptions {
  nodeName?: string;
  /** Who is behind an address (store, identities, ipcache). */
  context?: FlowContext;
  /** Flow events from the datapath. Without it, feed events with `ingest`. */
  events?: FlowEventSource;
  /** Kernel counters, lost events and map usage. */
  datapath?: DatapathStats;
  /** Endpoint and identity counts. */
  controlPlane?: ControlPlaneStats;
  /** The agent's events ("change", "realized"): Kubernetes events, compile and realization times. */
  agentEvents?: AgentEventsLike;
  /** Recent flows kept (default 4095). */
  ringCapacity?: number;
  /** Flows one slow client may have queued (default 4096). */
  clientQueue?: number;
  /** Flow API unix socket (default /run/weir/observer.sock); "" for none. */
  socketPath?: string;
  /** Flow API TCP listener "host:port", off unless given. */
  tcpAddress?: string;
  /** Mutual TLS of the TCP listener (the agent never listens on TCP without it). */
  tls?: TlsFiles;
  /** /metrics port (default 9962); null for no metrics server. */
  metricsPort?: number | null;
  metricsHost?: string;
  /** Serve /metrics from this off-loop thread, answering with the last rendering while the main loop is busy (the node agent). */
  metricsOffLoop?: OffLoopHost;
  podMetrics?: PodMetricsOptions;
  /** How often the datapath's lost-event counter is read (default 1000 ms). */
  lostPollMs?: number;
}

export interface Observability {
  observer: Observer;
  metrics: WeirMetrics;
  /** Where the flow API listens. */
  flowApi: string[];
  metricsUrl?: string;
  /** Renders /metrics now for an off-loop server to answer with while the main loop is busy (otherwise nothing). */
  refreshMetrics(): Promise<void>;
  /** Hands decoded events to the observer (what `events` does by itself). */
  ingest(events: FlowEvent[]): void;
  close(): Promise<void>;
}

export async function startObservability(o: ObservabilityOptions = {}): Promise<Observability> {
  const observer = new Observer({
    capacity: o.ringCapacity,
    clientQueue: o.clientQueue,
    nodeName: o.nodeName,
    context: o.context,
  });
  const metrics = new WeirMetrics({
    datapath: o.datapath,
    controlPlane: o.controlPlane,
    observer,
    podMetrics: o.podMetrics,
  });

  let api: ObserverServer | undefined;
  let http: (MetricsServer & { refresh?(): Promise<void> }) | undefined;
  let source: { close(): void } | undefined;
  let lostTimer: NodeJS.Timeout | undefined;
  const stopAgentEvents = o.agentEvents ? recordAgentEvents(metrics, o.agentEvents) : undefined;
  try {
    const socketPath = o.socketPath ?? AGENT_OBSERVER_SOCKET;
    if (socketPath || o.tcpAddress)
      api = await startObserverServer(observer, { socketPath, tcpAddress: o.tcpAddress, tls: o.tls });
    if (o.metricsPort !== null)
      http = o.metricsOffLoop
        ? await startMetricsServerOffLoop(metrics, o.metricsPort ?? DEFAULT_METRICS_PORT, o.metricsHost, {
            offLoop: o.metricsOffLoop,
          })
        : await startMetricsServer(metrics, o.metricsPort ?? DEFAULT_METRICS_PORT, o.metricsHost);
    if (o.events) source = o.events((evs) => observer.ingest(evs));
    const lostEvents = o.datapath?.lostEvents?.bind(o.datapath);
    if (lostEvents) {
      let last = lostEvents();
      lostTimer = setInterval(() => {
        const now = lostEvents();
        if (now > last) observer.addLost(Number(now - last));
        last = now;
      }, o.lostPollMs ?? 1000);
      lostTimer.unref();
    }
  } catch (e) {
    stopAgentEvents?.();
    source?.close();
    await api?.close();
    await http?.close();
    throw e;
  }

  return {
    observer,
    metrics,
    flowApi: api?.addresses ?? [],
    metricsUrl: http?.url,
    refreshMetrics: async () => {
      await http?.refresh?.();
    },
    ingest: (evs) => observer.ingest(evs),
    close: async () => {
      if (lostTimer) clearInterval(lostTimer);
      stopAgentEvents?.();
      source?.close();
      metrics.close();
      await Promise.all([api?.close(), http?.close()]);
    },
  };
}

/** What `fromAgent` needs: the agent, its compiler and (when it enforces) its datapath. */
export interface AgentParts {
  agent: Agent;
  engine: PolicyEngine;
  /** Absent when the agent runs without the eBPF datapath (lab --no-enforce). */
  enforcement?: DatapathEnforcement;
  /** Host-side interface name by ifindex. */
  interfaceName?: (ifindex: number) => string | undefined;
  /** The local pod (namespace/name) on the host-side interface with this ifindex. */
  podKeyOnInterface?: (ifindex: number) => string | undefined;
}

/**
 * The options every weir agent (node daemon, lab) passes: flows enriched from the engine,
 * the datapath's events, counters, lost events and map fill, endpoint and identity counts,
 * and the agent's own events for the Kubernetes-event and latency metrics.
 */
export function fromAgent(
  p: AgentParts,
): Pick<ObservabilityOptions, 'context' | 'events' | 'datapath' | 'controlPlane' | 'agentEvents'> {
  const dp = p.enforcement?.datapath;
  const syncer = p.enforcement?.syncer;
  return {
    context: new EngineFlowContext(p.engine, {
      generation: () => p.agent.generation,
      ...(p.interfaceName ? { interfaceName: p.interfaceName } : {}),
      ...(p.podKeyOnInterface ? { podKeyOnInterface: p.podKeyOnInterface } : {}),
      serviceKeyOfFrontend: (address, port, protocol) => {
        const services = (p.agent.compiler as Partial<ServicesCompiler>).services;
        const name = IP_PROTOCOL_NAMES[protocol];
        return services && name
          ? services.frontend(frontendKey({ address, port, protocol: name }))?.service
          : undefined;
      },
    }),
    ...(dp && syncer
      ? {
          events: (cb: (events: FlowEvent[]) => void) => dp.onFlowEvents(cb),
          datapath: {
            readCounters: () => dp.counters(),
            lostEvents: () => dp.lostEvents(),
            conntrackMisses: () => dp.conntrackMisses(),
            mapUsage: () => datapathMapUsage(dp),
            sync: () => syncer.status(),
            serviceCounters: () => dp.serviceCounters(),
          },
        }
      : {}),
    controlPlane: {
      endpointsEnforced: () => {
        let ingress = 0;
        let egress = 0;
        for (const ep of p.engine.snapshot().endpoints.values()) {
          if (ep.ingressIsolated) ingress++;
          if (ep.egressIsolated) egress++;
        }
        return { ingress, egress };
      },
      identitiesInUse: () => p.engine.stats.identities,
    },
    agentEvents: p.agent.events,
  };
}
