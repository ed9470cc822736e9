/**
 * What the metrics read, and from whom. Everything here is read at scrape time
 * (prom-client collect callbacks): no per-packet work happens in user space.
 */

/** One entry of the datapath's counters array (bpf/weir_abi.h), summed over CPUs. */
export interface KernelCounter {
  /** WEIR_DIR_* */
  direction: number;
  /** WEIR_VERDICT_* */
  verdict: number;
  /** WEIR_MATCH_* for forwarded packets, WEIR_DROP_* for dropped ones. */
  reason: number;
  packets: bigint;
  bytes: bigint;
}

export interface MapUsage {
  /** Map name as pinned, e.g. "weir_policy". */
  map: string;
  entries: number;
  capacity: number;
}

export interface DatapathStats {
  readCounters(): KernelCounter[];
  /** Records the datapath could not put into its ring buffer, since the maps were created. */
  lostEvents?(): bigint;
  /** TCP packets without SYN that found no conntrack entry (evicted connections, mostly), per direction. */
  conntrackMisses?(): { ingress: bigint; egress: bigint };
  mapUsage?(): MapUsage[];
  /** The syncer's queue: keys failing (requeued with backoff), write failures and drift repaired since start. */
  sync?(): SyncCounts;
  /** Service translations (weir_lb_counters, maps/readers.ts readServiceCounters), summed over CPUs. */
  serviceCounters?(): ServiceTranslationCounts;
}

/** NEW: a backend chosen for a new connection; FORWARD/REVERSE: packets translated each way; HAIRPIN: connections given back to their own pod; NO_BACKEND: packets to a frontend without backends; SNAT_NEW: NodePort connections masqueraded; SNAT_FULL: packets dropped for want of a masquerade port. */
export interface ServiceTranslationCounts {
  NEW: bigint;
  FORWARD: bigint;
  REVERSE: bigint;
  HAIRPIN: bigint;
  NO_BACKEND: bigint;
  SNAT_NEW: bigint;
  SNAT_FULL: bigint;
}

export interface SyncCounts {
  failing: unknown[];
  pending: unknown[];
  writeFailures: number;
  repaired: number;
  resyncs: number;
}

export interface ControlPlaneStats {
  /** Local endpoints isolated (policy-enforced) per direction. */
  endpointsEnforced(): { ingress: number; egress: number };
  identitiesInUse(): number;
}
