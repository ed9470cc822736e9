/**
 * The reconciler: the only writer of the datapath's maps. It turns desired
 * state (agent/desired.ts) into minimal, batched map writes, in an order that
 * never opens an allow-all window:
 *   1. new policy entries, 2. stale policy entries removed, 3. the endpoint
 *   record (isolation, kinds, policy_rev bumped) — so a connection re-judged
 *   after the bump sees exactly the new rules — 4. ipcache upserts first and
 *   removals last.
 * A full resync reads what the pinned maps hold (after an agent restart) and
 * removes what is not desired.
 */
import type { DesiredDiff, DesiredState, EndpointState, IpcacheEntry, PolicyEntry } from '../desired.js';
import type { BpfMap } from '../../maps/bpf-map.js';
import { Identity, Limits } from '../../maps/abi.js';
import {
  encodeEndpoint,
  endpointAddresses,
  encodeEndpointKey,
  decodeEndpoint,
  decodeEndpointKey,
  type EndpointValue,
} from '../../maps/codecs/endpoint.js';
import { decodePolicyKey, decodePolicyRangeKey, encodePolicyValue } from '../../maps/codecs/policy.js';
import {
  decodeIpcacheKey,
  decodeIpcacheLpmKey,
  decodeIpcacheValue,
  encodeIpcacheKey,
  encodeIpcacheLpmKey,
  encodeIpcacheValue,
} from '../../maps/codecs/ipcache.js';
import { parseCidr } from '../../maps/codecs/addr.js';
import { countEntry, endpointKeys, entryKeys, flagsOf, type EntryRefs } from './entries.js';

export interface ReconcilerMaps {
  endpoints: BpfMap;
  /** ARRAY endpoint id -> policy_rev, read by the established fast path. */
  endpointRev: BpfMap;
  policy: BpfMap;
  policyRange: BpfMap;
  ipcache: BpfMap;
  ipcacheLpm: BpfMap;
}

/** Maps an endpoint key ("namespace/name") to its host-side ifindex, or undefined if its interface is not there yet. */
export type IfindexOf = (endpointKey: string) => number | undefined;

export interface ReconcileStats {
  /** Map writes (updates + deletes) done by the last apply. */
  writes: number;
  /** Endpoints whose interface is not known yet (not enforced until it is). */
  pending: string[];
  /** Errors of the last apply (e.g. a full map); the maps keep their previous, narrower state. */
  errors: string[];
}

interface Realized {
  ifindex: number;
  value: EndpointValue;
  policy: Map<string, Buffer>;
  ranges: Map<string, Buffer>;
  /** Reference counts of the entries written; undefined: not known (adopted, or a failed write). */
  refs?: EntryRefs;
}

const hex = (b: Buffer): string => b.toString('hex');
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};
const revKey = u32;
const revValue = u32;

export class Reconciler {
  private desired: DesiredState = { endpoints: new Map(), ipcache: new Map() };
  private nodeAddresses: string[] = [];
  /** By endpoint id. */
  private realized = new Map<number, Realized>();
  private idByKey = new Map<string, number>();
  private ipcacheRealized = new Map<string, number>(); // cidr -> identity
  /** Revisions are never reused on this node, so a stamp can only match its own endpoint's revision. */
  private nextRev = 1;
  /** Desired ipcache by canonical CIDR, node addresses included; rebuilt lazily after a full apply. */
  private ipcacheWanted: Map<string, number> | undefined;
  private lastStats: ReconcileStats = { writes: 0, pending: [], errors: [] };
  /** Desired entries by entry key, per endpoint, for endpoints that received entry diffs. */
  private entryIndex = new Map<string, Map<string, PolicyEntry>>();
  /** Endpoints whose desired `entries` array lags their entryIndex (rebuilt before a whole-endpoint sync). */
  private staleEntries = new Set<string>();

  constructor(
    private readonly maps: ReconcilerMaps,
    private readonly ifindexOf: IfindexOf,
  ) {}

  get stats(): ReconcileStats {
    return this.lastStats;
  }

  /** The node's own addresses: they resolve to identity host (1). Applied on the next apply. */
  setNodeAddresses(ips: string[]): void {
    this.nodeAddresses = [...ips];
    this.ipcacheWanted = undefined;
  }

  /** Entries held in each map this reconciler writes (what it wrote or adopted), for map-pressure metrics. */
  entryCounts(): Record<keyof ReconcilerMaps, number> {
    let policy = 0;
    let policyRange = 0;
    for (const r of this.realized.values()) {
      policy += r.policy.size;
      policyRange += r.ranges.size;
    }
    let ipcache = 0;
    for (const cidr of this.ipcacheRealized.keys()) if (isExactCanonical(cidr)) ipcache++;
    return {
      endpoints: this.realized.size,
      endpointRev: this.realized.size,
      policy,
      policyRange,
      ipcache,
      ipcacheLpm: this.ipcacheRealized.size - ipcache,
    };
  }

  /** Endpoint id assigned to an endpoint key, if enforced. */
  endpointId(key: string): number | undefined {
    return this.idByKey.get(key);
  }

  /** Start-up and resync: make the maps equal the desired state, whatever they held. */
  applyFull(state: DesiredState): ReconcileStats {
    this.desired = { endpoints: new Map(state.endpoints), ipcache: new Map(state.ipcache) };
    this.entryIndex.clear();
    this.staleEntries.clear();
    this.ipcacheWanted = undefined;
    this.readRealized();
    const stats: ReconcileStats = { writes: 0, pending: [], errors: [] };
    this.syncIpcacheUpserts(stats);
    // stale endpoints go first (freeing room), except on an interface a desired
    // endpoint takes over: that record is overwritten in place, never left open
    const keptIds = new Set(this.idByKey.values());
    const wantedIfindexes = new Set<number>();
    for (const ep of this.desired.endpoints.values()) {
      const i = this.ifindexOf(ep.key);
      if (i !== undefined) wantedIfindexes.add(i);
    }
    const takenOver: Array<[number, Realized]> = [];
    for (const [id, r] of [...this.realized]) {
      if (keptIds.has(id)) continue;
      if (wantedIfindexes.has(r.ifindex)) takenOver.push([id, r]);
      else this.removeRealized(id, r, stats);
    }
    // (taken-over ids stay reserved until their entries are gone, so no new endpoint reuses them)
    for (const ep of this.desired.endpoints.values()) this.syncEndpoint(ep, stats);
    for (const [id, r] of takenOver) {
      this.realized.delete(id);
      this.maps.policy.deleteBatch([...r.policy.values()]);
      this.maps.policyRange.deleteBatch([...r.ranges.values()]);
      stats.writes += r.policy.size + r.ranges.size;
    }
    this.syncIpcacheRemovals(stats);
    this.lastStats = stats;
    return stats;
  }

  /** Increment: touches only what the diff names. */
  applyDiff(diff: DesiredDiff): ReconcileStats {
    const stats: ReconcileStats = { writes: 0, pending: [], errors: [] };
    // Only the CIDRs the diff names are compared and written (not the whole ipcache).
    const cidrs = this.updateWantedIpcache(diff);
    const whole = new Set<string>();
    for (const ep of diff.endpointsChanged) {
      this.desired.endpoints.set(ep.key, { ...ep, entries: [...ep.entries] });
      this.entryIndex.delete(ep.key);
      this.staleEntries.delete(ep.key);
      whole.add(ep.key);
    }
    // Entry diffs update the desired entries in O(diff); endpoints not changed whole get only
    // the entries that came or went written (reference counted: entries may share keys).
    const partial = new Map<string, { came: PolicyEntry[]; gone: PolicyEntry[] }>();
    for (const key of new Set([...diff.entriesRemoved.keys(), ...diff.entriesAdded.keys()])) {
      const ep = this.desired.endpoints.get(key);
      const removed = diff.entriesRemoved.get(key) ?? [];
      const added = diff.entriesAdded.get(key) ?? [];
      if (!ep || removed.length + added.length === 0) continue;
      const index = this.indexOf(ep);
      const before = new Map<string, PolicyEntry | undefined>();
      for (const e of [...removed, ...added]) {
        const k = entryKey(e);
        if (!before.has(k)) before.set(k, index.get(k));
      }
      for (const e of removed) index.delete(entryKey(e));
      for (const e of added) index.set(entryKey(e), e);
      this.staleEntries.add(key);
      if (whole.has(key)) continue;
      const change = { came: [] as PolicyEntry[], gone: [] as PolicyEntry[] };
      for (const [k, old] of before) {
        const now = index.get(k);
        if (old && !now) change.gone.push(old);
        else if (!old && now) change.came.push(now); // an entry replaced by one of the same key keeps its map keys
      }
      partial.set(key, change);
    }
    this.syncIpcacheUpserts(stats, cidrs);
    for (const key of whole) {
      const ep = this.desired.endpoints.get(key);
      if (ep) this.syncEndpoint(ep, stats);
    }
    for (const [key, change] of partial) this.syncEntries(key, change.came, change.gone, stats);
    for (const key of diff.endpointsRemoved) {
      this.desired.endpoints.delete(key);
      this.entryIndex.delete(key);
      this.staleEntries.delete(key);
      const id = this.idByKey.get(key);
      if (id === undefined) continue;
      const r = this.realized.get(id);
      if (r) this.removeRealized(id, r, stats);
      this.idByKey.delete(key);
    }
    this.syncIpcacheRemovals(stats, cidrs);
    this.lastStats = stats;
    return stats;
  }

  /** Re-tries endpoints whose interface appeared since the last apply. */
  retryPending(): ReconcileStats {
    const stats: ReconcileStats = { writes: 0, pending: [], errors: [] };
    for (const ep of this.desired.endpoints.values()) if (!this.idByKey.has(ep.key)) this.syncEndpoint(ep, stats);
    this.lastStats = stats;
    return stats;
  }

  // ---- internals ----

  private readRealized(): void {
    this.realized.clear();
    this.ipcacheRealized.clear();
    const byIfindex = new Map<number, number>();
    for (const [k, v] of this.maps.endpoints.entries()) {
      const value = decodeEndpoint(v);
      const ifindex = decodeEndpointKey(k);
      this.nextRev = Math.max(this.nextRev, value.policyRev + 1);
      this.realized.set(value.endpointId, { ifindex, value, policy: new Map(), ranges: new Map() });
      byIfindex.set(ifindex, value.endpointId);
    }
    const orphans: Buffer[] = [];
    const orphanRanges: Buffer[] = [];
    for (const [k] of this.maps.policy.entries()) {
      const r = this.realized.get(decodePolicyKey(k).endpointId);
      if (r) r.policy.set(hex(k), k);
      else orphans.push(k);
    }
    for (const k of this.maps.policyRange.keys()) {
      const r = this.realized.get(decodePolicyRangeKey(k).endpointId);
      if (r) r.ranges.set(hex(k), k);
      else orphanRanges.push(k);
    }
    // entries of endpoints that no longer exist can allow nothing: remove them
    this.maps.policy.deleteBatch(orphans);
    this.maps.policyRange.deleteBatch(orphanRanges);
    // keep ids of endpoints whose interface is still the same
    this.idByKey.clear();
    for (const ep of this.desired.endpoints.values()) {
      const ifindex = this.ifindexOf(ep.key);
      const id = ifindex === undefined ? undefined : byIfindex.get(ifindex);
      if (id !== undefined) this.idByKey.set(ep.key, id);
    }
    for (const [k, v] of this.maps.ipcache.entries())
      this.ipcacheRealized.set(decodeIpcacheKey(k), decodeIpcacheValue(v));
    for (const [k, v] of this.maps.ipcacheLpm.entries())
      this.ipcacheRealized.set(decodeIpcacheLpmKey(k), decodeIpcacheValue(v));
  }

  private allocateId(): number {
    const used = new Set(this.realized.keys());
    for (const id of this.idByKey.values()) used.add(id);
    for (let id = 1; id < Limits.ENDPOINT_IDS; id++) if (!used.has(id)) return id;
    throw new Error('no free endpoint id: too many endpoints on this node');
  }

  /** Returns the endpoint id when enforced, undefined when its interface is unknown. */
  private syncEndpoint(ep: EndpointState, stats: ReconcileStats): number | undefined {
    if (this.staleEntries.delete(ep.key)) ep.entries = [...this.indexOf(ep).values()];
    const ifindex = this.ifindexOf(ep.key);
    if (ifindex === undefined) {
      stats.pending.push(ep.key);
      return this.idByKey.get(ep.key);
    }
    let id = this.idByKey.get(ep.key);
    if (id === undefined) {
      id = this.allocateId();
      this.idByKey.set(ep.key, id);
    }
    const want = endpointKeys(ep, id);
    const have = this.realized.get(id) ?? {
      ifindex,
      value: { endpointId: id, identity: 0, policyRev: 0, flags: 0, ipv4: '', ipv6: '' },
      policy: new Map(),
      ranges: new Map(),
    };
    try {
      // 1. additions
      const addPolicy = [...want.policy].filter(([h]) => !have.policy.has(h));
      const addRanges = [...want.ranges].filter(([h]) => !have.ranges.has(h));
      const allow = encodePolicyValue();
      this.maps.policy.updateBatch(addPolicy.map(([, k]) => [k, allow]));
      for (const [h, k] of addPolicy) have.policy.set(h, k);
      this.maps.policyRange.updateBatch(addRanges.map(([, k]) => [k, allow]));
      for (const [h, k] of addRanges) have.ranges.set(h, k);
      // 2. removals
      const delPolicy = [...have.policy].filter(([h]) => !want.policy.has(h));
      const delRanges = [...have.ranges].filter(([h]) => !want.ranges.has(h));
      this.maps.policy.deleteBatch(delPolicy.map(([, k]) => k));
      for (const [h] of delPolicy) have.policy.delete(h);
      this.maps.policyRange.deleteBatch(delRanges.map(([, k]) => k));
      for (const [h] of delRanges) have.ranges.delete(h);
      stats.writes += addPolicy.length + addRanges.length + delPolicy.length + delRanges.length;
      // 3. the endpoint record, rev bumped when anything it enforces changed
      // (a changed address too: connections of the old one are judged, and source-checked, again)
      const addrs = endpointAddresses(ep.ips);
      const changed =
        addPolicy.length + addRanges.length + delPolicy.length + delRanges.length > 0 ||
        have.value.flags !== want.flags ||
        have.value.ipv4 !== addrs.ipv4 ||
        have.value.ipv6 !== addrs.ipv6;
      const value: EndpointValue = {
        endpointId: id,
        identity: ep.identity,
        policyRev: changed || !this.realized.has(id) ? this.takeRev() : have.value.policyRev,
        flags: want.flags,
        ...addrs,
      };
      if (have.ifindex !== ifindex && this.realized.has(id)) {
        this.maps.endpoints.delete(encodeEndpointKey(have.ifindex));
        stats.writes++;
      }
      const same =
        this.realized.has(id) && have.ifindex === ifindex && JSON.stringify(have.value) === JSON.stringify(value);
      if (!same) {
        this.writeEndpoint(ifindex, value);
        stats.writes += 2;
      }
      this.realized.set(id, { ifindex, value, policy: have.policy, ranges: have.ranges, refs: want.refs });
    } catch (err) {
      stats.errors.push(`endpoint ${ep.key}: ${err instanceof Error ? err.message : String(err)}`);
      this.realized.set(id, { ...have, refs: undefined });
    }
    return id;
  }

  /** The desired entries of an endpoint by entry key (built on first use). */
  private indexOf(ep: EndpointState): Map<string, PolicyEntry> {
    let index = this.entryIndex.get(ep.key);
    if (!index) {
      index = new Map(ep.entries.map((e) => [entryKey(e), e]));
      this.entryIndex.set(ep.key, index);
    }
    return index;
  }

  /**
   * Writes the entries that came and removes those that went, in the same order as a whole sync
   * (additions, removals, then the record with its revision bumped), without touching the others.
   * Falls back to a whole sync when what the maps hold for the endpoint is not known.
   */
  private syncEntries(key: string, came: PolicyEntry[], gone: PolicyEntry[], stats: ReconcileStats): void {
    const id = this.idByKey.get(key);
    const r = id === undefined ? undefined : this.realized.get(id);
    const ifindex = this.ifindexOf(key);
    const ep = this.desired.endpoints.get(key);
    if (!ep) return;
    if (id === undefined || !r || !r.refs || ifindex === undefined || ifindex !== r.ifindex) {
      this.syncEndpoint(ep, stats);
      return;
    }
    if (came.length + gone.length === 0) return;
    const refs = r.refs;
    try {
      const touchedPolicy = new Map<string, Buffer>();
      const touchedRanges = new Map<string, Buffer>();
      for (const [list, delta] of [
        [came, 1],
        [gone, -1],
      ] as const) {
        for (const e of list) {
          const keys = entryKeys(e, id, key);
          countEntry(refs, e, keys, delta);
          for (const [h, k] of keys.policy) touchedPolicy.set(h, k);
          for (const [h, k] of keys.ranges) touchedRanges.set(h, k);
        }
      }
      const allow = encodePolicyValue();
      const addPolicy = [...touchedPolicy].filter(([h]) => refs.policy.has(h) && !r.policy.has(h));
      const addRanges = [...touchedRanges].filter(([h]) => refs.ranges.has(h) && !r.ranges.has(h));
      const delPolicy = [...touchedPolicy].filter(([h]) => !refs.policy.has(h) && r.policy.has(h));
      const delRanges = [...touchedRanges].filter(([h]) => !refs.ranges.has(h) && r.ranges.has(h));
      this.maps.policy.updateBatch(addPolicy.map(([, k]) => [k, allow]));
      for (const [h, k] of addPolicy) r.policy.set(h, k);
      this.maps.policyRange.updateBatch(addRanges.map(([, k]) => [k, allow]));
      for (const [h, k] of addRanges) r.ranges.set(h, k);
      this.maps.policy.deleteBatch(delPolicy.map(([, k]) => k));
      for (const [h] of delPolicy) r.policy.delete(h);
      this.maps.policyRange.deleteBatch(delRanges.map(([, k]) => k));
      for (const [h] of delRanges) r.ranges.delete(h);
      const writes = addPolicy.length + addRanges.length + delPolicy.length + delRanges.length;
      stats.writes += writes;
      const flags = flagsOf(refs);
      if (writes > 0 || flags !== r.value.flags) {
        r.value = { ...r.value, identity: ep.identity, policyRev: this.takeRev(), flags };
        this.writeEndpoint(r.ifindex, r.value);
        stats.writes += 2;
      }
    } catch (err) {
      stats.errors.push(`endpoint ${key}: ${err instanceof Error ? err.message : String(err)}`);
      r.refs = undefined; // the next change of this endpoint syncs it whole
    }
  }

  private takeRev(): number {
    const r = this.nextRev;
    this.nextRev = this.nextRev >= 0xffffffff ? 1 : this.nextRev + 1;
    return r;
  }

  /** The endpoint record, then the fast path's copy of its revision. */
  private writeEndpoint(ifindex: number, value: EndpointValue): void {
    this.maps.endpoints.update(encodeEndpointKey(ifindex), encodeEndpoint(value));
    this.maps.endpointRev.update(revKey(value.endpointId), revValue(value.policyRev));
  }

  private removeRealized(id: number, r: Realized, stats: ReconcileStats): void {
    try {
      this.maps.endpoints.delete(encodeEndpointKey(r.ifindex));
      this.maps.endpointRev.update(revKey(id), revValue(0));
      this.maps.policy.deleteBatch([...r.policy.values()]);
      this.maps.policyRange.deleteBatch([...r.ranges.values()]);
      stats.writes += 1 + r.policy.size + r.ranges.size;
      this.realized.delete(id);
    } catch (err) {
      stats.errors.push(`removing endpoint id ${id}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private desiredIpcache(): Map<string, number> {
    if (this.ipcacheWanted) return this.ipcacheWanted;
    const m = new Map<string, number>();
    for (const e of this.desired.ipcache.values()) m.set(canonical(e), e.identity);
    for (const ip of this.nodeAddresses) m.set(canonical({ cidr: ip, identity: 1 }), 1);
    this.ipcacheWanted = m;
    return m;
  }

  /** Applies a diff's ipcache part to the desired state; returns the canonical CIDRs it touched. */
  private updateWantedIpcache(diff: DesiredDiff): string[] {
    const want = this.desiredIpcache();
    const nodes = new Set(this.nodeAddresses.map((ip) => canonical({ cidr: ip, identity: 1 })));
    const touched: string[] = [];
    for (const e of diff.ipcacheUpserted) {
      this.desired.ipcache.set(e.cidr, e);
      const c = canonical(e);
      if (!nodes.has(c)) want.set(c, e.identity); // the node's own addresses stay host
      touched.push(c);
    }
    for (const cidr of diff.ipcacheRemoved) {
      this.desired.ipcache.delete(cidr);
      const c = canonical({ cidr, identity: 0 });
      if (!nodes.has(c)) want.delete(c);
      touched.push(c);
    }
    return touched;
  }

  /** Writes desired ipcache entries that differ from the maps: all of them, or only `only` (canonical CIDRs). */
  private syncIpcacheUpserts(stats: ReconcileStats, only?: readonly string[]): void {
    const want = this.desiredIpcache();
    const exact: Array<[Buffer, Buffer]> = [];
    const exactCidrs: Array<[string, number]> = [];
    /** Identities an address moved from or to; undefined once a change needs every endpoint re-judged. */
    let moved: Set<number> | undefined = new Set();
    let changedExisting = false;
    const candidates: Iterable<[string, number | undefined]> = only
      ? only.map((c) => [c, want.get(c)] as [string, number | undefined])
      : want;
    for (const [cidr, identity] of candidates) {
      if (identity === undefined) continue;
      const have = this.ipcacheRealized.get(cidr);
      if (have === identity) continue;
      if (have !== undefined) {
        changedExisting = true;
        if (!isExactCanonical(cidr) || have < Identity.CLUSTER_MIN || identity < Identity.CLUSTER_MIN)
          moved = undefined;
        else moved?.add(have).add(identity);
      }
      try {
        if (isExactCanonical(cidr)) {
          exact.push([encodeIpcacheKey(cidr.slice(0, cidr.indexOf('/'))), encodeIpcacheValue(identity)]);
          exactCidrs.push([cidr, identity]);
        } else {
          this.maps.ipcacheLpm.update(encodeIpcacheLpmKey(cidr), encodeIpcacheValue(identity));
          this.ipcacheRealized.set(cidr, identity);
          stats.writes++;
        }
      } catch (err) {
        stats.errors.push(`ipcache ${cidr}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    try {
      this.maps.ipcache.updateBatch(exact);
      for (const [cidr, identity] of exactCidrs) this.ipcacheRealized.set(cidr, identity);
      stats.writes += exact.length;
    } catch (err) {
      stats.errors.push(`ipcache: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (changedExisting) this.bumpAll(stats, moved);
  }

  /** Removes ipcache entries that are not desired: any of them, or only among `only` (canonical CIDRs). */
  private syncIpcacheRemovals(stats: ReconcileStats, only?: readonly string[]): void {
    const want = this.desiredIpcache();
    let removed = false;
    for (const cidr of only ?? [...this.ipcacheRealized.keys()]) {
      if (want.has(cidr) || !this.ipcacheRealized.has(cidr)) continue;
      if (isExactCanonical(cidr)) this.maps.ipcache.delete(encodeIpcacheKey(cidr.slice(0, cidr.indexOf('/'))));
      else this.maps.ipcacheLpm.delete(encodeIpcacheLpmKey(cidr));
      this.ipcacheRealized.delete(cidr);
      stats.writes++;
      removed = true;
    }
    if (removed) this.bumpAll(stats);
  }

  /**
   * An address changed identity: connections are judged again on their next forward packet.
   * With `moved` (the cluster identities single addresses moved from and to), only endpoints whose
   * entries name one of them: a verdict reads the remote identity only through entries keyed by
   * it (ANY entries match the old and the new alike), so no other endpoint's verdict can change.
   * Without it (a range, a reserved identity such as host, a removal), every endpoint.
   */
  private bumpAll(stats: ReconcileStats, moved?: ReadonlySet<number>): void {
    // Two batched writes (records, then their revisions) instead of two syscalls per endpoint:
    // each endpoint's record still lands before the fast path's copy of its revision.
    const records: Array<[Buffer, Buffer]> = [];
    const revs: Array<[Buffer, Buffer]> = [];
    for (const r of this.realized.values()) {
      const ids = r.refs?.ids;
      if (moved && ids && ![...moved].some((i) => ids.has(i))) continue;
      r.value = { ...r.value, policyRev: this.takeRev() };
      records.push([encodeEndpointKey(r.ifindex), encodeEndpoint(r.value)]);
      revs.push([revKey(r.value.endpointId), revValue(r.value.policyRev)]);
    }
    try {
      this.maps.endpoints.updateBatch(records);
      this.maps.endpointRev.updateBatch(revs);
      stats.writes += records.length + revs.length;
    } catch (err) {
      stats.errors.push(
        `re-judging connections after an identity change: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }
}

/** What makes two entries the same entry (derivedFrom aside). */
const entryKey = (e: PolicyEntry): string => `${e.direction}|${e.remoteIdentity}|${e.protocol}|${e.port}|${e.endPort}`;

const canonicalCache = new Map<string, string>();

/** A canonical CIDR (see canonical()) that is a single address. */
const isExactCanonical = (c: string): boolean => c.endsWith(c.includes(':') ? '/128' : '/32');

/** The form the maps give back ("10.0.0.1/32", "fd00::/64"), memoized: resyncs see the same CIDRs again and again. */
function canonical(e: Pick<IpcacheEntry, 'cidr' | 'identity'>): string {
  let c = canonicalCache.get(e.cidr);
  if (c === undefined) {
    c = computeCanonical(e.cidr);
    if (canonicalCache.size > 1 << 20) canonicalCache.clear();
    canonicalCache.set(e.cidr, c);
  }
  return c;
}

const PLAIN_V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/;

function computeCanonical(cidr: string): string {
  const m = PLAIN_V4.exec(cidr);
  if (
    m &&
    m.slice(1, 5).every((o) => Number(o) <= 255 && String(Number(o)) === o) &&
    (m[5] === undefined || m[5] === '32')
  ) {
    return `${m[1]}.${m[2]}.${m[3]}.${m[4]}/32`; // an exact IPv4 address, already canonical
  }
  const e = { cidr };
  const { addr, prefix } = parseCidr(e.cidr);
  if (prefix === (addr.includes(':') ? 128 : 32)) return decodeIpcacheKey(encodeIpcacheKey(addr));
  return decodeIpcacheLpmKey(encodeIpcacheLpmKey(e.cidr));
}
