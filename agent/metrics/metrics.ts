/**
 * weir's Prometheus metrics. Kernel counters, map fill, endpoint and identity counts
 * are read when Prometheus scrapes; durations and Kubernetes events are recorded as
 * they happen by the parts of the agent that see them.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Observer } from '../flows/observer.js';
import { directionName, dropReasonLabel, isPolicyDecision, matchName } from '../flows/names.js';
import { TrafficDirection, Verdict } from '../flows/types.js';
import type { ControlPlaneStats, DatapathStats } from './sources.js';

const VERDICT_FORWARDED = 0;
const DROP_POLICY_DENIED = 1;
const DROP_POLICY_REVOKED = 2;

export interface PodMetricsOptions {
  /** Per-pod flow counters (labels namespace and pod). Off by default. */
  enabled: boolean;
  /** Most pods with their own series; flows of further pods count under pod="other". */
  maxPods: number;
}

export interface WeirMetricsOptions {
  datapath?: DatapathStats;
  controlPlane?: ControlPlaneStats;
  observer?: Observer;
  podMetrics?: PodMetricsOptions;
}

export const DEFAULT_MAX_PODS = 100;

/**
 * One scrape reads the counters map once, not once per metric family: `text()` starts a
 * fresh reading, which the collect callbacks of that scrape share (and callers of the
 * registry itself get readings at most 200 ms old).
 */
function memoizedCounters(d: DatapathStats, maxAgeMs = 200): DatapathStats & { fresh(): void } {
  let at = -Infinity;
  let rows: ReturnType<DatapathStats['readCounters']> = [];
  return {
    fresh: () => {
      at = -Infinity;
    },
    readCounters: () => {
      const now = performance.now();
      if (now - at > maxAgeMs) {
        rows = d.readCounters();
        at = now;
      }
      return rows;
    },
    ...(d.lostEvents ? { lostEvents: () => d.lostEvents!() } : {}),
    ...(d.mapUsage ? { mapUsage: () => d.mapUsage!() } : {}),
    ...(d.sync ? { sync: () => d.sync!() } : {}),
  };
}

export class WeirMetrics {
  readonly registry = new Registry();
  private readonly compileDuration: Histogram<string>;
  private readonly realizationLatency: Histogram<string>;
  private readonly k8sEvents: Counter<'resource' | 'action'>;
  private readonly podCounts = new Map<string, { ns: string; pod: string; dir: string; verdict: string; n: number }>();
  private readonly podKeys = new Set<string>();
  private unsubscribe?: () => void;
  private readonly datapath?: { fresh(): void };

  constructor(private readonly o: WeirMetricsOptions = {}) {
    const registers = [this.registry];
    const datapath = o.datapath ? memoizedCounters(o.datapath) : undefined;
    this.datapath = datapath;
    const observer = o.observer;
    const cp = o.controlPlane;

    new Counter({
      name: 'weir_policy_verdicts_total',
      help: 'Policy decisions on new connections, in packets, by direction, how the verdict was reached, and action',
      labelNames: ['direction', 'match', 'action'],
      registers,
      collect() {
        this.reset();
        for (const c of datapath?.readCounters() ?? []) {
          const direction = directionName(c.direction);
          if (c.verdict === VERDICT_FORWARDED) {
            if (isPolicyDecision(c.reason))
              this.inc({ direction, match: matchName(c.reason), action: 'forwarded' }, Number(c.packets));
          } else if (c.reason === DROP_POLICY_DENIED) {
            this.inc({ direction, match: 'none', action: 'dropped' }, Number(c.packets));
          } else if (c.reason === DROP_POLICY_REVOKED) {
            this.inc({ direction, match: 'revoked', action: 'dropped' }, Number(c.packets));
          }
        }
      },
    });
    new Counter({
      name: 'weir_drops_total',
      help: 'Packets dropped by the datapath, by reason and direction',
      labelNames: ['reason', 'direction'],
      registers,
      collect() {
        this.reset();
        for (const c of datapath?.readCounters() ?? []) {
          if (c.verdict !== VERDICT_FORWARDED)
            this.inc({ reason: dropReasonLabel(c.reason), direction: directionName(c.direction) }, Number(c.packets));
        }
      },
    });
    new Counter({
      name: 'weir_drop_bytes_total',
      help: 'Bytes dropped by the datapath, by reason and direction',
      labelNames: ['reason', 'direction'],
      registers,
      collect() {
        this.reset();
        for (const c of datapath?.readCounters() ?? []) {
          if (c.verdict !== VERDICT_FORWARDED)
            this.inc({ reason: dropReasonLabel(c.reason), direction: directionName(c.direction) }, Number(c.bytes));
        }
      },
    });
    new Counter({
      name: 'weir_forwards_total',
      help: 'Packets forwarded by the datapath, by direction',
      labelNames: ['direction'],
      registers,
      collect() {
        this.reset();
        for (const dir of ['ingress', 'egress']) this.inc({ direction: dir }, 0);
        for (const c of datapath?.readCounters() ?? []) {
          if (c.verdict === VERDICT_FORWARDED) this.inc({ direction: directionName(c.direction) }, Number(c.packets));
        }
      },
    });
    new Counter({
      name: 'weir_forward_bytes_total',
      help: 'Bytes forwarded by the datapath, by direction',
      labelNames: ['direction'],
      registers,
      collect() {
        this.reset();
        for (const c of datapath?.readCounters() ?? []) {
          if (c.verdict === VERDICT_FORWARDED) this.inc({ direction: directionName(c.direction) }, Number(c.bytes));
        }
      },
    });
    new Counter({
      name: 'weir_flows_processed_total',
      help: 'Flow events the agent processed, by event type and verdict',
      labelNames: ['type', 'verdict'],
      registers,
      collect() {
        this.reset();
        if (!observer) return;
        const c = observer.counts;
        this.inc({ type: 'policy-verdict', verdict: 'FORWARDED' }, c.policyVerdictForwarded);
        this.inc({ type: 'drop', verdict: 'DROPPED' }, c.dropDropped);
      },
    });
    new Counter({
      name: 'weir_lost_events_total',
      help: 'Flow events lost: in the datapath ring buffer (agent too slow) or in a flow client queue (client too slow)',
      labelNames: ['source'],
      registers,
      collect() {
        this.reset();
        const kernel = datapath?.lostEvents?.();
        const status = observer?.status();
        this.inc({ source: 'datapath_ring_buffer' }, kernel !== undefined ? Number(kernel) : (status?.lostEvents ?? 0));
        this.inc({ source: 'flow_client_queue' }, status?.clientDroppedFlows ?? 0);
      },
    });
    new Gauge({
      name: 'weir_flow_clients',
      help: 'Flow API clients following flows now',
      registers,
      collect() {
        this.set(observer?.status().connectedClients ?? 0);
      },
    });
    new Gauge({
      name: 'weir_endpoints_enforced',
      help: 'Local endpoints isolated by policy, by direction',
      labelNames: ['direction'],
      registers,
      collect() {
        if (!cp) return;
        const e = cp.endpointsEnforced();
        this.set({ direction: 'ingress' }, e.ingress);
        this.set({ direction: 'egress' }, e.egress);
      },
    });
    new Gauge({
      name: 'weir_identities_in_use',
      help: 'Security identities referenced by endpoints and policies',
      registers,
      collect() {
        if (cp) this.set(cp.identitiesInUse());
      },
    });
    const sync = () => datapath?.sync?.();
    new Gauge({
      name: 'weir_sync_failing_keys',
      help: 'Endpoints and ipcache entries whose last write failed (requeued with backoff; the previous state stays)',
      registers,
      collect() {
        this.set(sync()?.failing.length ?? 0);
      },
    });
    new Gauge({
      name: 'weir_sync_pending_endpoints',
      help: 'Endpoints not enforced yet because their interface is not known',
      registers,
      collect() {
        this.set(sync()?.pending.length ?? 0);
      },
    });
    new Counter({
      name: 'weir_sync_write_failures_total',
      help: 'Map writes of the syncer that failed (each retried until it holds)',
      registers,
      collect() {
        const s = sync();
        if (!s) return;
        this.reset();
        this.inc(s.writeFailures);
      },
    });
    new Counter({
      name: 'weir_resync_repaired_total',
      help: 'Differences between the kernel maps and what the agent wrote, found and repaired by periodic resyncs',
      registers,
      collect() {
        const s = sync();
        if (!s) return;
        this.reset();
        this.inc(s.repaired);
      },
    });
    new Counter({
      name: 'weir_resyncs_total',
      help: 'Full resyncs (map dumps compared with what the agent wrote)',
      registers,
      collect() {
        const s = sync();
        if (!s) return;
        this.reset();
        this.inc(s.resyncs);
      },
    });
    const usage = () => datapath?.mapUsage?.() ?? [];
    new Gauge({
      name: 'weir_map_entries',
      help: 'Entries in each BPF map',
      labelNames: ['map'],
      registers,
      collect() {
        this.reset();
        for (const m of usage()) this.set({ map: m.map }, m.entries);
      },
    });
    new Gauge({
      name: 'weir_map_capacity',
      help: 'Maximum entries of each BPF map',
      labelNames: ['map'],
      registers,
      collect() {
        this.reset();
        for (const m of usage()) this.set({ map: m.map }, m.capacity);
      },
    });
    new Gauge({
      name: 'weir_map_pressure',
      help: 'Fill ratio of each BPF map (entries / capacity, 0 to 1)',
      labelNames: ['map'],
      registers,
      collect() {
        this.reset();
        for (const m of usage()) this.set({ map: m.map }, m.capacity > 0 ? m.entries / m.capacity : 0);
      },
    });
    this.compileDuration = new Histogram({
      name: 'weir_policy_compile_duration_seconds',
      help: 'Time to compile policies, endpoints and identities into the desired datapath state',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.realizationLatency = new Histogram({
      name: 'weir_policy_realization_latency_seconds',
      help: 'Time from a cluster event (policy, pod or namespace change) to the datapath enforcing it',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.k8sEvents = new Counter({
      name: 'weir_kubernetes_events_total',
      help: 'Kubernetes (or lab) events received, by resource and action',
      labelNames: ['resource', 'action'],
      registers,
    });

    if (o.podMetrics?.enabled && observer) {
      const maxPods = o.podMetrics.maxPods;
      const counts = this.podCounts;
      this.unsubscribe = observer.onFlow((f) => {
        // Count against the local endpoint: the receiver on ingress, the sender on egress.
        const ep = f.traffic_direction === TrafficDirection.INGRESS ? f.destination : f.source;
        if (!ep.pod_name) return;
        let podKey = `${ep.namespace}/${ep.pod_name}`;
        if (!this.podKeys.has(podKey)) {
          if (this.podKeys.size >= maxPods) podKey = 'other';
          else this.podKeys.add(podKey);
        }
        const dir = f.traffic_direction === TrafficDirection.INGRESS ? 'ingress' : 'egress';
        const verdict = f.verdict === Verdict.DROPPED ? 'DROPPED' : 'FORWARDED';
        const key = `${podKey}|${dir}|${verdict}`;
        const e = counts.get(key);
        if (e) e.n++;
        else {
          const other = podKey === 'other';
          counts.set(key, { ns: other ? '' : ep.namespace, pod: other ? 'other' : ep.pod_name, dir, verdict, n: 1 });
        }
      });
      new Counter({
        name: 'weir_pod_flows_total',
        help: `Flow events per local pod, by direction and verdict (at most ${maxPods} pods; the rest count as pod="other")`,
        labelNames: ['namespace', 'pod', 'direction', 'verdict'],
        registers,
        collect() {
          this.reset();
          for (const e of counts.values())
            this.inc({ namespace: e.ns, pod: e.pod, direction: e.dir, verdict: e.verdict }, e.n);
        },
      });
    }
  }

  /** Records one policy compile (seconds). */
  observeCompile(seconds: number): void {
    this.compileDuration.observe(seconds);
  }

  /** Records the time from a cluster event to the datapath enforcing it (seconds). */
  observeRealization(seconds: number): void {
    this.realizationLatency.observe(seconds);
  }

  /** Counts one Kubernetes (or lab) event, e.g. ("networkpolicy", "update"). */
  kubernetesEvent(resource: string, action: string): void {
    this.k8sEvents.inc({ resource: resource.toLowerCase(), action: action.toLowerCase() });
  }

  /** The exposition text of one scrape. */
  text(): Promise<string> {
    this.datapath?.fresh();
    return this.registry.metrics();
  }

  close(): void {
    this.unsubscribe?.();
  }
}
