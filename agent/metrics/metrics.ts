/**
 * weir's Prometheus metrics. Kernel counters, map fill, endpoint and identity counts
 * are read when Prometheus scrapes; durations and Kubernetes events are recorded as
 * they happen by the parts of the agent that see them. Label values are lower snake case
 * (`action="dropped"`, `reason="policy_denied"`), and every series a labelled counter can have
 * (short of per-pod ones) is exported from start-up, at zero until something happens.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Observer } from '../flows/observer.js';
import {
  DROP_REASONS,
  MATCH_NAMES,
  directionName,
  dropReasonLabel,
  isPolicyDecision,
  matchName,
} from '../flows/names.js';
import { TrafficDirection, Verdict, type Flow } from '../flows/types.js';
import { buildInfo, type BuildInfo } from './build-info.js';
import type { ControlPlaneStats, DatapathStats } from './sources.js';

const VERDICT_FORWARDED = 0;
const DROP_POLICY_DENIED = 1;
const DROP_POLICY_REVOKED = 2;
const DIRECTIONS = ['ingress', 'egress'] as const;

/** A label value as the metrics spell it: "POLICY_DENIED" -> "policy_denied", "l3-l4" -> "l3_l4". */
export function labelValue(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
}

/** `match` values of policy decisions on new connections (what weir_policy_verdicts_total counts). */
export const VERDICT_MATCHES: readonly string[] = MATCH_NAMES.map((name, code) => ({ name, code }))
  .filter((m) => m.code !== 0 && isPolicyDecision(m.code))
  .map((m) => labelValue(m.name));

/** `reason` values of weir_drops_total. */
export const DROP_REASON_LABELS: readonly string[] = DROP_REASONS.map((d) => labelValue(d.name));

/** Kinds and actions of weir_kubernetes_events_total. */
export const EVENT_RESOURCES = ['namespace', 'pod', 'networkpolicy', 'node'] as const;
export const EVENT_ACTIONS = ['added', 'modified', 'deleted'] as const;

export interface PodMetricsOptions {
  /**
   * Per-pod flow counters (labels source_namespace, source_pod, destination_namespace,
   * destination_pod, direction, verdict). Off by default.
   */
  enabled: boolean;
  /** Most pods named in series; further pods count as pod "other" (namespace ""). */
  maxPods: number;
}

export interface WeirMetricsOptions {
  datapath?: DatapathStats;
  controlPlane?: ControlPlaneStats;
  observer?: Observer;
  podMetrics?: PodMetricsOptions;
  /** process_* and nodejs_* metrics (prom-client's default collectors); default on. */
  defaultMetrics?: boolean;
  /** What weir_build_info reports; default: this build. */
  build?: BuildInfo;
}

export const DEFAULT_MAX_PODS = 100;

/** Labels of weir_pod_flows_total: not `namespace`/`pod`, which Prometheus adds for the scraped target. */
export const POD_FLOW_LABELS = [
  'source_namespace',
  'source_pod',
  'destination_namespace',
  'destination_pod',
  'direction',
  'verdict',
] as const;
type PodFlowLabel = (typeof POD_FLOW_LABELS)[number];

/**
 * One scrape reads the counters map once, and counts the maps' entries once, not once per
 * metric family (three families report map fill: a count walks the 100,000 entries of a large
 * cluster's ipcache): `text()` starts a fresh reading, which the collect callbacks of that
 * scrape share (and callers of the registry itself get readings at most 200 ms old).
 */
function memoizedCounters(d: DatapathStats, maxAgeMs = 200): DatapathStats & { fresh(): void } {
  let at = -Infinity;
  let rows: ReturnType<DatapathStats['readCounters']> = [];
  let usageAt = -Infinity;
  let usage: ReturnType<NonNullable<DatapathStats['mapUsage']>> = [];
  return {
    fresh: () => {
      at = -Infinity;
      usageAt = -Infinity;
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
    ...(d.conntrackMisses ? { conntrackMisses: () => d.conntrackMisses!() } : {}),
    ...(d.mapUsage
      ? {
          mapUsage: () => {
            const now = performance.now();
            if (now - usageAt > maxAgeMs) {
              usage = d.mapUsage!();
              usageAt = now;
            }
            return usage;
          },
        }
      : {}),
    ...(d.sync ? { sync: () => d.sync!() } : {}),
    ...(d.serviceCounters ? { serviceCounters: () => d.serviceCounters!() } : {}),
  };
}

export class WeirMetrics {
  readonly registry = new Registry();
  private readonly compileDuration: Histogram<string>;
  private readonly realizationLatency: Histogram<string>;
  private readonly k8sEvents: Counter<'resource' | 'action'>;
  private readonly podCounts = new Map<string, { labels: Record<PodFlowLabel, string>; n: number }>();
  private readonly podKeys = new Set<string>();
  private unsubscribe?: () => void;
  private readonly datapath?: { fresh(): void };

  constructor(private readonly o: WeirMetricsOptions = {}) {
    const registers = [this.registry];
    const datapath = o.datapath ? memoizedCounters(o.datapath) : undefined;
    this.datapath = datapath;
    const observer = o.observer;
    const cp = o.controlPlane;

    if (o.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    const build = o.build ?? buildInfo();
    new Gauge({
      name: 'weir_build_info',
      help: 'Always 1: the weir version, the git commit it was built from ("unknown" when not known) and the Node.js version',
      labelNames: ['version', 'git_commit', 'node_version'],
      registers,
    }).set({ version: build.version, git_commit: build.gitCommit, node_version: build.nodeVersion }, 1);

    new Counter({
      name: 'weir_policy_verdicts_total',
      help: 'Policy decisions on new connections, in packets, by direction, how the verdict was reached, and action',
      labelNames: ['direction', 'match', 'action'],
      registers,
      collect() {
        this.reset();
        for (const direction of DIRECTIONS) {
          for (const match of VERDICT_MATCHES) this.inc({ direction, match, action: 'forwarded' }, 0);
          this.inc({ direction, match: 'none', action: 'dropped' }, 0);
          this.inc({ direction, match: 'revoked', action: 'dropped' }, 0);
        }
        for (const c of datapath?.readCounters() ?? []) {
          const direction = directionName(c.direction);
          if (c.verdict === VERDICT_FORWARDED) {
            if (isPolicyDecision(c.reason))
              this.inc({ direction, match: labelValue(matchName(c.reason)), action: 'forwarded' }, Number(c.packets));
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
        for (const direction of DIRECTIONS) for (const reason of DROP_REASON_LABELS) this.inc({ reason, direction }, 0);
        for (const c of datapath?.readCounters() ?? []) {
          if (c.verdict !== VERDICT_FORWARDED)
            this.inc(
              { reason: labelValue(dropReasonLabel(c.reason)), direction: directionName(c.direction) },
              Number(c.packets),
            );
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
        for (const direction of DIRECTIONS) for (const reason of DROP_REASON_LABELS) this.inc({ reason, direction }, 0);
        for (const c of datapath?.readCounters() ?? []) {
          if (c.verdict !== VERDICT_FORWARDED)
            this.inc(
              { reason: labelValue(dropReasonLabel(c.reason)), direction: directionName(c.direction) },
              Number(c.bytes),
            );
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
        for (const direction of DIRECTIONS) this.inc({ direction }, 0);
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
        for (const direction of DIRECTIONS) this.inc({ direction }, 0);
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
        const c = observer?.counts;
        this.inc({ type: 'policy_verdict', verdict: 'forwarded' }, c?.policyVerdictForwarded ?? 0);
        this.inc({ type: 'drop', verdict: 'dropped' }, c?.dropDropped ?? 0);
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
    new Counter({
      name: 'weir_service_translations_total',
      help: 'Service translations in the datapath: new_connection (a backend chosen), forward and reverse (packets rewritten to a backend and back to the frontend), hairpin (a pod given its own connection), masquerade (a NodePort connection to a backend on another node given a source port of this node)',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        const c = datapath?.serviceCounters?.();
        this.inc({ kind: 'new_connection' }, Number(c?.NEW ?? 0n));
        this.inc({ kind: 'forward' }, Number(c?.FORWARD ?? 0n));
        this.inc({ kind: 'reverse' }, Number(c?.REVERSE ?? 0n));
        this.inc({ kind: 'hairpin' }, Number(c?.HAIRPIN ?? 0n));
        this.inc({ kind: 'masquerade' }, Number(c?.SNAT_NEW ?? 0n));
      },
    });
    new Counter({
      name: 'weir_service_no_backend_drops_total',
      help: 'Packets to a Service frontend that has no backend, dropped (SERVICE_BACKEND_NOT_FOUND)',
      registers,
      collect() {
        this.reset();
        this.inc(Number(datapath?.serviceCounters?.().NO_BACKEND ?? 0n));
      },
    });
    new Counter({
      name: 'weir_conntrack_midstream_misses_total',
      help:
        'TCP packets without SYN, of an enforced pod, that found no conntrack entry in either direction, counted before the policy decides: ' +
        'what an evicted connection looks like from the datapath (BPF cannot see LRU evictions), plus connections older than the datapath and stray or crafted segments',
      labelNames: ['direction'],
      registers,
      collect() {
        this.reset();
        const m = datapath?.conntrackMisses?.();
        this.inc({ direction: 'ingress' }, m ? Number(m.ingress) : 0);
        this.inc({ direction: 'egress' }, m ? Number(m.egress) : 0);
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
    for (const resource of EVENT_RESOURCES)
      for (const action of EVENT_ACTIONS) this.k8sEvents.inc({ resource, action }, 0);

    if (o.podMetrics?.enabled && observer) {
      const maxPods = o.podMetrics.maxPods;
      const counts = this.podCounts;
      const named = this.podKeys;
      // A pod keeps its own series while at most maxPods pods are named; later ones are "other".
      const side = (ep: { namespace: string; pod_name: string }): [string, string] => {
        if (!ep.pod_name) return ['', ''];
        const key = `${ep.namespace}/${ep.pod_name}`;
        if (!named.has(key)) {
          if (named.size >= maxPods) return ['', 'other'];
          named.add(key);
        }
        return [ep.namespace, ep.pod_name];
      };
      type Entry = { labels: Record<PodFlowLabel, string>; n: number };
      const entry = (f: Flow, ingress: boolean, dropped: boolean): Entry | null => {
        const [sns, spod] = side(f.source);
        const [dns, dpod] = side(f.destination);
        if (!spod && !dpod) return null;
        const labels: Record<PodFlowLabel, string> = {
          source_namespace: sns,
          source_pod: spod,
          destination_namespace: dns,
          destination_pod: dpod,
          direction: ingress ? 'ingress' : 'egress',
          verdict: dropped ? 'dropped' : 'forwarded',
        };
        const key = POD_FLOW_LABELS.map((l) => labels[l]).join('|');
        let e = counts.get(key);
        if (e === undefined) counts.set(key, (e = { labels, n: 0 }));
        return e;
      };
      // A flow's endpoints are the enricher's shared objects and a pod once named stays named, so a
      // pair's series (by direction and verdict) is found once, not by building its labels per flow.
      const byPair = new WeakMap<object, WeakMap<object, Array<Entry | null | undefined>>>();
      this.unsubscribe = observer.onFlow((f) => {
        let inner = byPair.get(f.source);
        if (inner === undefined) byPair.set(f.source, (inner = new WeakMap()));
        let slots = inner.get(f.destination);
        if (slots === undefined) inner.set(f.destination, (slots = [undefined, undefined, undefined, undefined]));
        const ingress = f.traffic_direction === TrafficDirection.INGRESS;
        const dropped = f.verdict === Verdict.DROPPED;
        const i = (ingress ? 2 : 0) + (dropped ? 1 : 0);
        let e = slots[i];
        if (e === undefined) e = slots[i] = entry(f, ingress, dropped);
        if (e !== null) e.n++;
      });
      new Counter({
        name: 'weir_pod_flows_total',
        help: `Flow events by source and destination pod, direction (seen from the local pod) and verdict (at most ${maxPods} pods named; the rest count as pod "other")`,
        labelNames: POD_FLOW_LABELS,
        registers,
        collect() {
          this.reset();
          for (const e of counts.values()) this.inc(e.labels, e.n);
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

  /** Counts one Kubernetes (or lab) event, e.g. ("NetworkPolicy", "modified"). */
  kubernetesEvent(resource: string, action: string): void {
    this.k8sEvents.inc({ resource: labelValue(resource), action: labelValue(action) });
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
