/**
 * The endpoint syncer: the only writer of the endpoint, policy and ipcache maps.
 *
 * The compiler publishes desired state (whole, or as a diff) and the syncer marks the keys it
 * touches dirty: an endpoint key ("namespace/name") or an ipcache CIDR. For each dirty key it
 * diffs desired against what it has written (realized) and writes in one order that never
 * widens access, in one function (`syncEndpoint`): new entries, stale entries, then the record
 * and its revision. A write that fails is undone (entries the attempt added are deleted again),
 * so the previous, narrower state stays in force, and the key is requeued with backoff.
 *
 * An ipcache CIDR whose identity changes first resolves to a transit identity that no entry
 * names (only "any" entries match it), then to its new identity once no endpoint that still
 * holds older entries names that identity; so an address never resolves, even for a moment, to
 * an identity whose entries were meant for other pods. While an ipcache write has failed, no
 * endpoint gets new entries (an ipBlock except that could not be written must not let the
 * broader prefix's entries through).
 *
 * `resync` dumps the maps, counts where they differ from what the syncer wrote (drift: a
 * restart, or someone editing the maps by hand) and repairs it. At start-up it adopts what a
 * previous agent pinned (endpoint ids are kept by interface).
 */
import type { DesiredDiff, DesiredState, EndpointState, IpcacheEntry, PolicyEntry } from '../desired.js';
import { entryKey } from '../desired.js';
import type { KernelMap } from '../../maps/kernel-map.js';
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
import { parsePrefix, prefixContains, type Prefix } from '../ipcache/cidr.js';
import { countEntry, entryKeys, flagsOf, type EntryRefs } from './entries.js';
import { ServiceBook } from './services.js';
import { MapFullError } from '../../maps/bpf-map.js';

export interface SyncerMaps {
  endpoints: KernelMap;
  /** ARRAY endpoint id -> policy_rev, read by the established fast path. */
  endpointRev: KernelMap;
  policy: KernelMap;
  policyRange: KernelMap;
  ipcache: KernelMap;
  ipcacheLpm: KernelMap;
  /** Service frontends and backend slots (agent/datapath/services.ts); without them Services are not written. */
  services?: KernelMap;
  backends?: KernelMap;
}

/** Maps an endpoint key ("namespace/name") to its host-side ifindex, or undefined if its interface is not there yet. */
export type IfindexOf = (endpointKey: string) => number | undefined;

/** The identity an ipcache entry holds while its identity changes: no entry names it. */
export const TRANSIT_IDENTITY = Identity.INIT;

export interface SyncerOptions {
  ifindexOf: IfindexOf;
  /** Called once an endpoint's record is written on an interface (attach its programs there). */
  attach?: (key: string, ifindex: number) => void;
  /** Called after an endpoint's record is removed from an interface. */
  detach?: (key: string, ifindex: number) => void;
  /** First retry delay after a failure (doubles up to maxBackoffMs, default 10 s). Default 200 ms. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** How often an endpoint whose interface is unknown is looked at again. Default 1 s. */
  pendingRetryMs?: number;
  /** Clock (ms); tests drive it. */
  now?: () => number;
  /** Run retries on a timer (default true); tests call `sync()` themselves. */
  timers?: boolean;
  log?: (line: string) => void;
}

export interface SyncFailure {
  /** "endpoint namespace/name" or "ipcache CIDR". */
  key: string;
  error: string;
  attempts: number;
  /** When the next attempt is due (ms, the syncer's clock). */
  retryAt: number;
}

export interface SyncStats {
  /** Map writes done by this round. */
  writes: number;
  /** Endpoints whose interface is not known yet (not enforced until it is). */
  pending: string[];
  /** Keys that failed in this round (requeued). */
  failures: SyncFailure[];
  /** Differences between the maps and the syncer's books found by a resync (0 for a plain sync). */
  repaired: number;
}

export interface SyncerStatus {
  dirty: number;
  pending: string[];
  failing: SyncFailure[];
  /** Map write failures since start. */
  writeFailures: number;
  /** Drift repaired by resyncs since start (adoption at start-up not counted). */
  repaired: number;
  resyncs: number;
  lastResyncAt?: number;
}

interface WantEndpoint {
  key: string;
  identity: number;
  /** The pod's addresses, written into its record (the datapath checks sources against them). */
  ips: string[];
  ingressIsolated: boolean;
  egressIsolated: boolean;
  entries: Map<string, PolicyEntry>;
  /** The endpoint id its keys are built with. */
  id: number;
  /** Entry counts per map key (hex): the keys wanted, encoded into a Buffer only when written. */
  refs: EntryRefs;
}

interface HaveEndpoint {
  id: number;
  /** Interface holding its record; undefined while no record is written. */
  ifindex?: number;
  value?: EndpointValue;
  attached?: number;
  /** The record was written but the fast path's copy of its revision not yet. */
  revPending?: boolean;
  /** Keys written (or possibly written): a superset of what the kernel holds for this id. */
  policy: KeyBook;
  ranges: KeyBook;
}

/**
 * Map keys written for one endpoint (hex -> key), counting the remote identities they name, so
 * "does this endpoint hold entries naming identity X" (asked of every endpoint whenever an
 * address changes identity) is one lookup, not a decode of every key.
 */
class KeyBook extends Map<string, Buffer> {
  private readonly named = new Map<number, number>();

  constructor(private readonly identityOf: (key: Buffer) => number) {
    super();
  }

  override set(hex: string, key: Buffer): this {
    if (!this.has(hex)) {
      const id = this.identityOf(key);
      this.named.set(id, (this.named.get(id) ?? 0) + 1);
    }
    return super.set(hex, key);
  }

  override delete(hex: string): boolean {
    const key = this.get(hex);
    if (key === undefined) return false;
    const id = this.identityOf(key);
    const n = (this.named.get(id) ?? 0) - 1;
    if (n > 0) this.named.set(id, n);
    else this.named.delete(id);
    return super.delete(hex);
  }

  override clear(): void {
    this.named.clear();
    super.clear();
  }

  /** A key naming this remote identity is written. */
  names(identity: number): boolean {
    return this.named.has(identity);
  }
}

function haveEndpoint(id: number): HaveEndpoint {
  return {
    id,
    policy: new KeyBook((k) => decodePolicyKey(k).identity),
    ranges: new KeyBook((k) => decodePolicyRangeKey(k).identity),
  };
}

interface Dirty {
  /** Touched map keys (hex), or undefined: compare everything. */
  touched?: Set<string>;
  notBefore: number;
  attempts: number;
  error?: string;
  /** The last attempt found a map full: retried as soon as a change may have made room. */
  full?: boolean;
}

const ENDPOINT_PREFIX = 'endpoint ';
const IPCACHE_PREFIX = 'ipcache ';
const SERVICE_PREFIX = 'service ';

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export class Syncer {
  private readonly want = new Map<string, WantEndpoint>();
  private readonly have = new Map<string, HaveEndpoint>();
  /** Endpoint id -> key owning it (desired or realized). */
  private readonly owners = new Map<number, string>();
  private readonly dirty = new Map<string, Dirty>();
  private readonly wantIp = new Map<string, number>();
  private readonly haveIp = new Map<string, number>();
  /** CIDR -> identity it resolved to before its transit (for selective re-judging). */
  private readonly transitFrom = new Map<string, number | undefined>();
  private readonly ipDirty = new Map<string, Dirty>();
  /** Service frontends (weir_svc key hex) to sync; written after endpoints and ipcache. */
  private readonly svcDirty = new Map<string, Dirty>();
  private readonly services: ServiceBook | undefined;
  private nodeAddresses = new Set<string>();
  private nextRev = 1;
  private paused = true;
  private writeFailures = 0;
  private repairedTotal = 0;
  private resyncs = 0;
  private lastResyncAt: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private readonly log: (line: string) => void;

  constructor(
    private readonly maps: SyncerMaps,
    private readonly opts: SyncerOptions,
  ) {
    this.now = opts.now ?? (() => performance.now());
    this.log = opts.log ?? (() => undefined);
    if (maps.services && maps.backends)
      this.services = new ServiceBook({ services: maps.services, backends: maps.backends });
  }

  // ---- desired state (what the compiler publishes) ----

  /** The node's own addresses: they resolve to identity host (1). */
  setNodeAddresses(ips: string[]): void {
    const next = new Set(ips.map((ip) => canonical(ip)));
    for (const c of new Set([...this.nodeAddresses, ...next])) this.markIp(c);
    this.nodeAddresses = next;
    for (const c of next) this.wantIp.set(c, Identity.HOST);
  }

  /** Replaces the whole desired state (start-up, or a full recompute). Writes nothing until `sync`/`resync`. */
  setDesired(state: DesiredState): void {
    for (const key of [...this.want.keys()]) if (!state.endpoints.has(key)) this.removeWanted(key);
    for (const ep of state.endpoints.values()) this.setEndpoint(ep);
    const cidrs = new Set<string>();
    for (const e of state.ipcache.values()) cidrs.add(canonical(e.cidr));
    for (const c of [...this.wantIp.keys()]) if (!cidrs.has(c) && !this.nodeAddresses.has(c)) this.unsetIp(c);
    for (const e of state.ipcache.values()) this.setIp(e);
    if (this.services) for (const hex of this.services.setAll(state.services?.values() ?? [])) this.markService(hex);
  }

  /** Applies one increment of desired state; only the keys it names become dirty. */
  update(diff: DesiredDiff): void {
    for (const e of diff.ipcacheUpserted) this.setIp(e);
    for (const c of diff.ipcacheRemoved) this.unsetIp(canonical(c));
    for (const ep of diff.endpointsChanged) this.setEndpoint(ep);
    for (const key of new Set([...diff.entriesRemoved.keys(), ...diff.entriesAdded.keys()])) {
      const w = this.want.get(key);
      if (!w) continue;
      const d = this.markEndpoint(key, false);
      for (const e of diff.entriesRemoved.get(key) ?? []) {
        const k = entryKey(e);
        const old = w.entries.get(k);
        if (!old) continue;
        w.entries.delete(k);
        this.count(w, old, -1, d.touched);
      }
      for (const e of diff.entriesAdded.get(key) ?? []) {
        const k = entryKey(e);
        const old = w.entries.get(k);
        w.entries.set(k, e);
        if (!old) this.count(w, e, 1, d.touched); // same key again: derivedFrom changed, the map keys did not
      }
    }
    for (const key of diff.endpointsRemoved) this.removeWanted(key);
    if (this.services) {
      for (const f of diff.servicesUpserted ?? []) this.markService(this.services.set(f));
      for (const k of diff.servicesRemoved ?? []) {
        const hex = this.services.unset(k);
        if (hex !== undefined) this.markService(hex);
      }
    }
  }

  /** Marks an endpoint dirty again (its interface appeared). */
  touch(key: string): void {
    if (this.want.has(key) || this.have.has(key)) this.markEndpoint(key, true);
  }

  // ---- what the rest of the agent reads ----

  /** Endpoint id of an endpoint whose record is written. */
  endpointId(key: string): number | undefined {
    const h = this.have.get(key);
    return h?.value && h.ifindex !== undefined ? h.id : undefined;
  }

  /** Interface an endpoint's record is written on. */
  enforcedIfindex(key: string): number | undefined {
    const h = this.have.get(key);
    return h?.value ? h.ifindex : undefined;
  }

  status(): SyncerStatus {
    return {
      dirty: this.dirty.size + this.ipDirty.size + this.svcDirty.size,
      pending: this.pendingKeys(),
      failing: this.failing(),
      writeFailures: this.writeFailures,
      repaired: this.repairedTotal,
      resyncs: this.resyncs,
      ...(this.lastResyncAt !== undefined ? { lastResyncAt: this.lastResyncAt } : {}),
    };
  }

  /** Stops the retry timer. */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.paused = true;
  }

  // ---- making it real ----

  /**
   * Reads what the maps hold, repairs any difference from what this syncer wrote (after a
   * restart: adopts it), then syncs every key. Unpauses the queue. Returns the round's stats;
   * `repaired` counts the differences found (0 at adoption).
   */
  resync(): SyncStats {
    const adopting = this.paused;
    this.paused = false;
    let repaired = this.readRealized(adopting);
    if (this.services) {
      const drift = this.services.readRealized();
      if (!adopting) repaired += drift;
      for (const hex of this.services.keys()) this.markService(hex);
    }
    for (const key of new Set([...this.want.keys(), ...this.have.keys()])) this.markEndpoint(key, true);
    for (const c of new Set([...this.wantIp.keys(), ...this.haveIp.keys()])) this.markIp(c);
    const stats = this.sync({ force: true });
    stats.repaired = repaired;
    if (!adopting) this.repairedTotal += repaired;
    this.resyncs++;
    this.lastResyncAt = this.now();
    if (repaired > 0 && !adopting) this.log(`resync repaired ${repaired} difference(s) between the maps and the agent`);
    return stats;
  }

  /** Syncs every dirty key that is due (all of them with `force`). Nothing is written while paused. */
  sync(opts: { force?: boolean } = {}): SyncStats {
    const stats: SyncStats = { writes: 0, pending: [], failures: [], repaired: 0 };
    if (this.paused) return stats;
    const now = this.now();
    const due = (d: Dirty): boolean => opts.force === true || d.notBefore <= now;

    // 1. ipcache CIDRs whose identity changes go to the transit identity first
    const cidrs = [...this.ipDirty].filter(([, d]) => due(d)).map(([c]) => c);
    let ipcacheFailed: string | undefined;
    const toTransit: Array<[string, number]> = [];
    for (const c of cidrs) {
      const want = this.wantIp.get(c);
      const have = this.haveIp.get(c);
      if (want === have) {
        this.ipDirty.delete(c);
        continue;
      }
      if (have === TRANSIT_IDENTITY) continue;
      this.transitFrom.set(c, have);
      toTransit.push([c, TRANSIT_IDENTITY]);
    }
    const transitFailed = this.writeIps(toTransit);
    stats.writes += toTransit.length - transitFailed.size;
    for (const [c, err] of transitFailed) {
      ipcacheFailed = `${IPCACHE_PREFIX}${c}: ${message(err)}`;
      this.fail(this.ipDirty, c, IPCACHE_PREFIX + c, err, now, stats);
    }

    // 2. endpoints; none gets new entries while an address whose identity changes is not in
    // transit yet (its write failed, now or in an earlier round still backing off)
    if (!ipcacheFailed) {
      for (const [c, d] of this.ipDirty) {
        const have = this.haveIp.get(c);
        if (have !== TRANSIT_IDENTITY && have !== this.wantIp.get(c)) {
          ipcacheFailed = `${IPCACHE_PREFIX}${c}: ${d.error ?? 'not written yet'}`;
          break;
        }
      }
    }
    let synced = 0;
    for (const [key, d] of [...this.dirty]) {
      if (!due(d)) continue;
      if (ipcacheFailed && this.want.has(key)) {
        this.fail(this.dirty, key, ENDPOINT_PREFIX + key, new Error(`waiting for ${ipcacheFailed}`), now, stats);
        continue;
      }
      try {
        const r = this.syncEndpoint(key, d.touched, stats);
        if (r === 'pending') {
          stats.pending.push(key);
          d.touched = undefined;
          d.notBefore = now + (this.opts.pendingRetryMs ?? 1000);
        } else {
          this.dirty.delete(key);
          synced++;
        }
      } catch (err) {
        d.touched = undefined; // compare the whole endpoint next time
        this.fail(this.dirty, key, ENDPOINT_PREFIX + key, err, now, stats);
      }
    }

    // 3. ipcache CIDRs get their identity once no unconverged endpoint names it
    let moved: Set<number> | undefined = new Set();
    let changed = false;
    const finals: Array<[string, number | undefined, number]> = [];
    for (const c of cidrs) {
      const d = this.ipDirty.get(c);
      if (!d || this.haveIp.get(c) !== TRANSIT_IDENTITY) continue;
      const want = this.wantIp.get(c);
      if (want === TRANSIT_IDENTITY) {
        this.ipDirty.delete(c);
        continue;
      }
      const next = want ?? this.fallback(c);
      const blocker = this.unconvergedNaming(next);
      if (blocker) {
        // retried with the endpoint that holds it back
        d.notBefore = Math.max(now, this.dirty.get(blocker)?.notBefore ?? now);
        continue;
      }
      finals.push([c, want, next]);
    }
    const finalFailed = this.writeIps(finals.map(([c, want]) => [c, want]));
    for (const [c, want, next] of finals) {
      const err = finalFailed.get(c);
      if (err !== undefined) {
        this.fail(this.ipDirty, c, IPCACHE_PREFIX + c, err, now, stats);
        continue;
      }
      stats.writes++;
      this.ipDirty.delete(c);
      const from = this.transitFrom.get(c);
      this.transitFrom.delete(c);
      // a new entry re-judges nothing (as before it existed, connections to it were judged by
      // the identity it resolved to then); a changed or removed one re-judges what it can affect
      if (from === undefined) continue;
      changed = true;
      if (!isExact(c) || want === undefined || from < Identity.CLUSTER_MIN || next < Identity.CLUSTER_MIN)
        moved = undefined;
      else moved?.add(from).add(next);
    }
    if (changed) this.bumpRevisions(moved, stats);

    // 4. Service frontends (each in its own never-widen order, agent/datapath/services.ts)
    if (this.services) {
      for (const [hex, d] of [...this.svcDirty]) {
        if (!due(d)) continue;
        try {
          stats.writes += this.services.sync(hex);
          this.svcDirty.delete(hex);
        } catch (err) {
          this.fail(this.svcDirty, hex, SERVICE_PREFIX + this.services.label(hex), err, now, stats);
        }
      }
    }
    if (synced > 0) this.retryFullNow();
    this.schedule();
    return stats;
  }

  /** Whether a Service frontend's maps equal its desired state (tests, status). */
  serviceConverged(frontendMapKeyHex: string): boolean {
    return this.services?.converged(frontendMapKeyHex) ?? false;
  }

  private markService(hex: string): void {
    if (!this.svcDirty.has(hex)) this.svcDirty.set(hex, { notBefore: 0, attempts: 0 });
  }

  /**
   * Makes one endpoint's maps equal its desired state, in the order that never widens access:
   * 1. new entries, 2. stale entries, 3. the record (isolation, kinds, policy_rev bumped) and
   * the fast path's copy of the revision. Removal: record first (its interface then drops
   * everything), then the revision, then the entries. A failed write undoes the entries this
   * attempt added and throws.
   */
  private syncEndpoint(key: string, touched: Set<string> | undefined, stats: SyncStats): 'done' | 'pending' {
    const want = this.want.get(key);
    let have = this.have.get(key);
    if (!want) {
      if (have) this.removeEndpoint(key, have, stats);
      return 'done';
    }
    const ifindex = this.opts.ifindexOf(key);
    if (ifindex === undefined) return 'pending';
    if (!have || have.id !== want.id) {
      if (have) this.removeEndpoint(key, have, stats);
      have = haveEndpoint(want.id);
      this.have.set(key, have);
    }
    const h = have;
    const diff = (wantKeys: ReadonlyMap<string, number>, haveKeys: Map<string, Buffer>) => {
      const add: Array<[string, Buffer]> = [];
      const del: Array<[string, Buffer]> = [];
      for (const hex of touched ?? wantKeys.keys())
        if (wantKeys.has(hex) && !haveKeys.has(hex)) add.push([hex, Buffer.from(hex, 'hex')]);
      for (const hex of touched ?? [...haveKeys.keys()]) {
        const k = haveKeys.get(hex);
        if (k && !wantKeys.has(hex)) del.push([hex, k]);
      }
      return { add, del };
    };
    const p = diff(want.refs.policy, h.policy);
    const r = diff(want.refs.ranges, h.ranges);
    const added: Array<[KernelMap, Map<string, Buffer>, string, Buffer]> = [];
    const allow = encodePolicyValue();
    try {
      // 1. new entries (booked before the write: the books hold a superset of the kernel)
      for (const [m, books, list] of [
        [this.maps.policy, h.policy, p.add],
        [this.maps.policyRange, h.ranges, r.add],
      ] as const) {
        for (const [hex, k] of list) {
          books.set(hex, k);
          added.push([m, books, hex, k]);
        }
        m.updateBatch(list.map(([, k]) => [k, allow]));
        stats.writes += list.length;
      }
      // 2. stale entries
      for (const [m, books, list] of [
        [this.maps.policy, h.policy, p.del],
        [this.maps.policyRange, h.ranges, r.del],
      ] as const) {
        for (const [hex, k] of list) {
          m.delete(k);
          books.delete(hex);
          stats.writes++;
        }
      }
      // 3. the record and its revision
      const flags = flagsOf(want.refs);
      const addrs = endpointAddresses(want.ips);
      const entriesChanged = p.add.length + p.del.length + r.add.length + r.del.length > 0;
      const recordChanged =
        !h.value ||
        h.value.policyRev === 0 ||
        h.ifindex !== ifindex ||
        h.value.flags !== flags ||
        h.value.identity !== want.identity ||
        h.value.ipv4 !== addrs.ipv4 ||
        h.value.ipv6 !== addrs.ipv6 ||
        h.value.endpointId !== want.id;
      if (entriesChanged || recordChanged) {
        const value: EndpointValue = {
          endpointId: want.id,
          identity: want.identity,
          flags,
          policyRev: this.takeRev(),
          ...addrs,
        };
        this.maps.endpoints.update(encodeEndpointKey(ifindex), encodeEndpoint(value));
        stats.writes++;
        const old = h.ifindex;
        h.value = value;
        h.ifindex = ifindex;
        h.revPending = true;
        if (old !== undefined && old !== ifindex) {
          this.maps.endpoints.delete(encodeEndpointKey(old));
          stats.writes++;
        }
      }
      if (h.revPending && h.value) {
        this.maps.endpointRev.update(u32(want.id), u32(h.value.policyRev));
        h.revPending = false;
        stats.writes++;
      }
    } catch (err) {
      for (const [m, books, hex, k] of added) {
        try {
          m.delete(k);
          books.delete(hex);
        } catch {
          /* stays booked: removed by a later sync */
        }
      }
      // a pod whose record could not be written is closed, not left unenforced: its interface
      // gets the programs, which drop every packet of an interface without a record (NO_ENDPOINT)
      if (h.attached === undefined && !h.value) {
        try {
          this.opts.attach?.(key, ifindex);
          h.attached = ifindex;
        } catch {
          /* retried with the endpoint */
        }
      }
      throw err;
    }
    if (h.attached !== ifindex) {
      if (h.attached !== undefined) this.opts.detach?.(key, h.attached);
      this.opts.attach?.(key, ifindex);
      h.attached = ifindex;
    }
    return 'done';
  }

  private removeEndpoint(key: string, h: HaveEndpoint, stats: SyncStats): void {
    if (h.ifindex !== undefined) {
      this.maps.endpoints.delete(encodeEndpointKey(h.ifindex));
      stats.writes++;
      h.ifindex = undefined;
      h.value = undefined;
    }
    this.maps.endpointRev.update(u32(h.id), u32(0));
    for (const [m, books] of [
      [this.maps.policy, h.policy],
      [this.maps.policyRange, h.ranges],
    ] as const) {
      for (const [hex, k] of [...books]) {
        m.delete(k);
        books.delete(hex);
        stats.writes++;
      }
    }
    if (h.attached !== undefined) {
      const i = h.attached;
      h.attached = undefined;
      this.opts.detach?.(key, i);
    }
    this.have.delete(key);
    if (this.owners.get(h.id) === key && this.want.get(key)?.id !== h.id) this.owners.delete(h.id);
  }

  // ---- ipcache ----

  private setIp(e: IpcacheEntry): void {
    const c = canonical(e.cidr);
    if (this.nodeAddresses.has(c)) return; // the node's own addresses stay host
    if (this.wantIp.get(c) === e.identity) return;
    this.wantIp.set(c, e.identity);
    this.markIp(c);
  }

  private unsetIp(c: string): void {
    if (this.nodeAddresses.has(c) || !this.wantIp.has(c)) return;
    this.wantIp.delete(c);
    this.markIp(c);
  }

  private markIp(c: string): void {
    if (!this.ipDirty.has(c)) this.ipDirty.set(c, { notBefore: 0, attempts: 0 });
  }

  /**
   * Writes many ipcache entries: the exact addresses in one batch (a first sync writes one per
   * pod of the cluster), prefixes and deletions one by one. Returns the entries that failed, with
   * their errors. A batch that fails may have written its first entries: the map is read back
   * for each, what landed is booked, and the rest is written one by one, so each entry gets its
   * own outcome and the books hold what the kernel holds.
   */
  private writeIps(list: Array<[string, number | undefined]>): Map<string, unknown> {
    const failed = new Map<string, unknown>();
    let single = list;
    const batch = list.filter((e): e is [string, number] => e[1] !== undefined && isExact(e[0]));
    if (batch.length > 1) {
      const keys = batch.map(([c]) => encodeIpcacheKey(c.slice(0, c.indexOf('/'))));
      let landed: (e: [string, number], i: number) => boolean = () => true;
      try {
        this.maps.ipcache.updateBatch(batch.map(([, id], i) => [keys[i]!, encodeIpcacheValue(id)]));
      } catch {
        landed = ([, id], i) => {
          const v = this.maps.ipcache.lookup(keys[i]!);
          return v !== undefined && decodeIpcacheValue(v) === id;
        };
      }
      const written = new Set<string>();
      batch.forEach((e, i) => {
        if (!landed(e, i)) return;
        this.haveIp.set(e[0], e[1]);
        written.add(e[0]);
      });
      single = list.filter((e) => !written.has(e[0]));
    }
    for (const [c, id] of single) {
      try {
        this.writeIp(c, id);
      } catch (err) {
        failed.set(c, err);
      }
    }
    return failed;
  }

  /** Writes (or with undefined, deletes) one ipcache entry and books it. */
  private writeIp(c: string, identity: number | undefined): void {
    const exact = isExact(c);
    const m = exact ? this.maps.ipcache : this.maps.ipcacheLpm;
    const k = exact ? encodeIpcacheKey(c.slice(0, c.indexOf('/'))) : encodeIpcacheLpmKey(c);
    if (identity === undefined) {
      m.delete(k);
      this.haveIp.delete(c);
    } else {
      m.update(k, encodeIpcacheValue(identity));
      this.haveIp.set(c, identity);
    }
  }

  /** The identity addresses of `c` resolve to once `c` is removed: the longest written prefix around it, else world. */
  private fallback(c: string): number {
    const inner = parsePrefix(c) as Prefix;
    let best: { bits: number; id: number } | undefined;
    for (const [other, id] of this.haveIp) {
      if (other === c || isExact(other)) continue;
      const outer = parsePrefix(other);
      if (typeof outer === 'string' || outer.bits >= inner.bits || !prefixContains(outer, inner)) continue;
      if (!best || outer.bits > best.bits) best = { bits: outer.bits, id };
    }
    return best?.id ?? Identity.WORLD;
  }

  /** An endpoint not yet equal to its desired state whose written entries name `identity`. */
  private unconvergedNaming(identity: number): string | undefined {
    for (const key of this.dirty.keys()) {
      const h = this.have.get(key);
      if (!h) continue;
      if (h.policy.names(identity) || h.ranges.names(identity)) return key;
    }
    return undefined;
  }

  /**
   * Addresses changed identity: connections are judged again on their next forward packet.
   * With `moved` (the cluster identities single addresses moved from and to), only endpoints
   * whose entries name one of them; without it, every endpoint. Records, then revisions.
   */
  private bumpRevisions(moved: ReadonlySet<number> | undefined, stats: SyncStats): void {
    const records: Array<[Buffer, Buffer]> = [];
    const revs: Array<[Buffer, Buffer]> = [];
    const bumped: Array<[string, HaveEndpoint, EndpointValue]> = [];
    for (const [key, h] of this.have) {
      if (!h.value || h.ifindex === undefined) continue;
      if (moved && !this.names(h, moved)) continue;
      const value = { ...h.value, policyRev: this.takeRev() };
      bumped.push([key, h, value]);
      records.push([encodeEndpointKey(h.ifindex), encodeEndpoint(value)]);
      revs.push([u32(h.id), u32(value.policyRev)]);
    }
    try {
      this.maps.endpoints.updateBatch(records);
      for (const [, h, value] of bumped) h.value = value;
      this.maps.endpointRev.updateBatch(revs);
      stats.writes += records.length + revs.length;
    } catch (err) {
      // what landed is not known: those records are written again (with a fresh revision)
      for (const [key, h] of bumped) {
        if (h.value) h.value = { ...h.value, policyRev: 0 };
        this.markEndpoint(key, false);
      }
      this.writeFailures++;
      this.log(`re-judging connections after an identity change: ${message(err)}`);
    }
  }

  private names(h: HaveEndpoint, ids: ReadonlySet<number>): boolean {
    for (const id of ids) if (h.policy.names(id) || h.ranges.names(id)) return true;
    return false;
  }

  // ---- books ----

  private setEndpoint(ep: EndpointState, withId?: number): void {
    let w = this.want.get(ep.key);
    const id = withId ?? w?.id ?? this.have.get(ep.key)?.id ?? this.allocateId(ep.key);
    w = {
      key: ep.key,
      identity: ep.identity,
      ips: [...ep.ips],
      ingressIsolated: ep.ingressIsolated,
      egressIsolated: ep.egressIsolated,
      entries: new Map(),
      id,
      refs: emptyRefs(ep),
    };
    for (const e of ep.entries) {
      const k = entryKey(e);
      if (w.entries.has(k)) continue;
      w.entries.set(k, e);
      this.count(w, e, 1, undefined);
    }
    this.want.set(ep.key, w);
    this.markEndpoint(ep.key, true);
  }

  private removeWanted(key: string): void {
    const w = this.want.get(key);
    if (!w) return;
    this.want.delete(key);
    if (!this.have.has(key) && this.owners.get(w.id) === key) this.owners.delete(w.id);
    this.markEndpoint(key, true);
  }

  private count(w: WantEndpoint, e: PolicyEntry, delta: 1 | -1, touched: Set<string> | undefined): void {
    const keys = entryKeys(e, w.id, w.key);
    countEntry(w.refs, e, keys, delta);
    if (touched) for (const list of [keys.policy, keys.ranges]) for (const [hex] of list) touched.add(hex);
  }

  private markEndpoint(key: string, whole: boolean): Dirty {
    let d = this.dirty.get(key);
    if (!d) {
      d = { touched: whole ? undefined : new Set(), notBefore: 0, attempts: 0 };
      this.dirty.set(key, d);
    } else if (whole) d.touched = undefined;
    d.notBefore = Math.min(d.notBefore, this.now());
    return d;
  }

  private allocateId(key: string): number {
    for (let id = 1; id < Limits.ENDPOINT_IDS; id++) {
      if (!this.owners.has(id)) {
        this.owners.set(id, key);
        return id;
      }
    }
    throw new Error('no free endpoint id: too many endpoints on this node');
  }

  private takeRev(): number {
    const r = this.nextRev;
    this.nextRev = this.nextRev >= 0xffffffff ? 1 : this.nextRev + 1;
    return r;
  }

  /**
   * Another key's writes may have made room in a full map: keys that failed for want of room
   * are due again in the next sync instead of after their backoff.
   */
  private retryFullNow(): void {
    for (const queue of [this.dirty, this.ipDirty, this.svcDirty])
      for (const d of queue.values()) if (d.full) d.notBefore = 0;
  }

  private fail(
    queue: Map<string, Dirty>,
    key: string,
    label: string,
    err: unknown,
    now: number,
    stats: SyncStats,
  ): void {
    const d = queue.get(key) ?? { notBefore: 0, attempts: 0 };
    d.attempts++;
    d.error = message(err);
    d.full = err instanceof MapFullError;
    const base = this.opts.backoffMs ?? 200;
    d.notBefore = now + Math.min(this.opts.maxBackoffMs ?? 10_000, base * 2 ** Math.min(d.attempts - 1, 20));
    queue.set(key, d);
    this.writeFailures++;
    stats.failures.push({ key: label, error: d.error, attempts: d.attempts, retryAt: d.notBefore });
  }

  private failing(): SyncFailure[] {
    const out: SyncFailure[] = [];
    for (const [queue, prefix] of [
      [this.dirty, ENDPOINT_PREFIX],
      [this.ipDirty, IPCACHE_PREFIX],
      [this.svcDirty, SERVICE_PREFIX],
    ] as const) {
      for (const [key, d] of queue)
        if (d.attempts > 0 && d.error) {
          const name = queue === this.svcDirty && this.services ? this.services.label(key) : key;
          out.push({ key: prefix + name, error: d.error, attempts: d.attempts, retryAt: d.notBefore });
        }
    }
    return out;
  }

  private pendingKeys(): string[] {
    const out: string[] = [];
    for (const [key, d] of this.dirty)
      if (d.attempts === 0 && this.want.has(key) && !this.have.get(key)?.value) out.push(key);
    return out;
  }

  private schedule(): void {
    if (this.opts.timers === false || this.paused) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    let next = Infinity;
    for (const d of this.dirty.values()) next = Math.min(next, d.notBefore);
    for (const d of this.ipDirty.values()) next = Math.min(next, d.notBefore);
    for (const d of this.svcDirty.values()) next = Math.min(next, d.notBefore);
    if (next === Infinity) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        try {
          this.sync();
        } catch (err) {
          this.log(`sync: ${message(err)}`);
        }
      },
      Math.max(10, next - this.now()),
    );
    this.timer.unref();
  }

  /**
   * Dumps the maps into the books. Returns how many differences from the books it found
   * (drift); at adoption everything found is simply taken over.
   */
  private readRealized(adopting: boolean): number {
    let drift = 0;
    const records = new Map<number, EndpointValue>(); // ifindex -> value
    for (const [k, v] of this.maps.endpoints.entries()) {
      const value = decodeEndpoint(v);
      records.set(decodeEndpointKey(k), value);
      this.nextRev = Math.max(this.nextRev, value.policyRev + 1);
    }
    const keyByIfindex = new Map<number, string>();
    if (adopting) {
      for (const key of this.want.keys()) {
        const i = this.opts.ifindexOf(key);
        if (i !== undefined) keyByIfindex.set(i, key);
      }
      // endpoint ids: pinned ones are kept by interface, the others are new and avoid every pinned id
      this.owners.clear();
      for (const [ifindex, value] of records)
        this.owners.set(value.endpointId, keyByIfindex.get(ifindex) ?? `#ifindex-${ifindex}`);
      for (const w of [...this.want.values()]) {
        let id: number | undefined;
        for (const [i, value] of records) if (keyByIfindex.get(i) === w.key) id = value.endpointId;
        this.setEndpoint(this.wantAsState(w), id ?? this.allocateId(w.key));
      }
    } else {
      for (const [key, h] of this.have) if (h.ifindex !== undefined) keyByIfindex.set(h.ifindex, key);
    }
    // records
    const seen = new Set<string>();
    for (const [ifindex, value] of records) {
      const key = keyByIfindex.get(ifindex) ?? `#ifindex-${ifindex}`;
      seen.add(key);
      let h = this.have.get(key);
      if (!h) {
        if (!adopting) drift++;
        h = haveEndpoint(this.want.get(key)?.id ?? value.endpointId);
        this.have.set(key, h);
      } else if (
        !h.value ||
        h.ifindex !== ifindex ||
        h.value.endpointId !== value.endpointId ||
        h.value.identity !== value.identity ||
        h.value.flags !== value.flags ||
        h.value.policyRev !== value.policyRev ||
        h.value.ipv4 !== value.ipv4 ||
        h.value.ipv6 !== value.ipv6
      ) {
        drift++;
      }
      if (!this.owners.has(h.id)) this.owners.set(h.id, key);
      h.ifindex = ifindex;
      h.value = value;
    }
    for (const [key, h] of this.have) {
      if (seen.has(key) || h.ifindex === undefined) continue;
      drift++; // the record is gone
      h.ifindex = undefined;
      h.value = undefined;
    }
    // entries, by the id that owns them
    const byId = new Map<number, HaveEndpoint>();
    for (const h of this.have.values()) byId.set(h.id, h);
    const kernelPolicy = new Map<number, Map<string, Buffer>>();
    const kernelRanges = new Map<number, Map<string, Buffer>>();
    for (const [k] of this.maps.policy.entries()) put(kernelPolicy, decodePolicyKey(k).endpointId, k);
    for (const [k] of this.maps.policyRange.entries()) put(kernelRanges, decodePolicyRangeKey(k).endpointId, k);
    for (const [kernel, pick] of [
      [kernelPolicy, (h: HaveEndpoint) => h.policy],
      [kernelRanges, (h: HaveEndpoint) => h.ranges],
    ] as const) {
      for (const h of this.have.values()) {
        const books = pick(h);
        const found = kernel.get(h.id) ?? new Map<string, Buffer>();
        for (const hex of books.keys()) if (!found.has(hex)) drift++;
        for (const hex of found.keys()) if (!books.has(hex)) drift++;
        books.clear();
        for (const [hex, k] of found) books.set(hex, k);
      }
      // entries no record and no endpoint owns allow nothing: removed at once
      for (const [id, found] of kernel) {
        if (byId.has(id)) continue;
        const owner = this.owners.get(id);
        const w = owner === undefined ? undefined : this.want.get(owner);
        if (w && !this.have.has(w.key)) {
          const h = haveEndpoint(id);
          this.have.set(w.key, h);
          byId.set(id, h);
          for (const [hex, k] of found) pick(h).set(hex, k);
          if (!adopting) drift += found.size;
          continue;
        }
        if (!adopting) drift += found.size;
        // booked under a key of their own that nobody wants: the queue removes them (retried if
        // that fails), and their id is not handed to a new endpoint meanwhile
        const key = `#entries-${id}`;
        let h = this.have.get(key);
        if (!h) {
          h = haveEndpoint(id);
          this.have.set(key, h);
          if (!this.owners.has(id)) this.owners.set(id, key);
          byId.set(id, h);
        }
        for (const [hex, k] of found) pick(h).set(hex, k);
      }
    }
    // ipcache
    const ip = new Map<string, number>();
    for (const [k, v] of this.maps.ipcache.entries()) ip.set(decodeIpcacheKey(k), decodeIpcacheValue(v));
    for (const [k, v] of this.maps.ipcacheLpm.entries()) ip.set(decodeIpcacheLpmKey(k), decodeIpcacheValue(v));
    for (const [c, id] of this.haveIp) if (ip.get(c) !== id) drift++;
    for (const c of ip.keys()) if (!this.haveIp.has(c)) drift++;
    this.haveIp.clear();
    for (const [c, id] of ip) this.haveIp.set(c, id);
    return adopting ? 0 : drift;
  }

  private wantAsState(w: WantEndpoint): EndpointState {
    return {
      key: w.key,
      namespace: w.key.split('/')[0] ?? '',
      name: w.key.split('/')[1] ?? '',
      ips: w.ips,
      identity: w.identity,
      ingressIsolated: w.ingressIsolated,
      egressIsolated: w.egressIsolated,
      entries: [...w.entries.values()],
    };
  }
}

function put(m: Map<number, Map<string, Buffer>>, id: number, k: Buffer): void {
  let inner = m.get(id);
  if (!inner) m.set(id, (inner = new Map()));
  inner.set(k.toString('hex'), k);
}

function emptyRefs(ep: Pick<EndpointState, 'ingressIsolated' | 'egressIsolated'>): EntryRefs {
  const isolation = (ep.ingressIsolated ? 1 : 0) | (ep.egressIsolated ? 2 : 0);
  return { isolation, policy: new Map(), ranges: new Map(), kinds: new Map(), ids: new Map() };
}

// ---- canonical CIDRs (the form the maps give back) ----

const canonicalCache = new Map<string, string>();

/** A canonical CIDR that is a single address. */
export const isExact = (c: string): boolean => c.endsWith(c.includes(':') ? '/128' : '/32');

/** "10.0.0.1" or "10.0.0.1/32" -> "10.0.0.1/32"; "fd00::0/64" -> "fd00::/64". Memoized. */
export function canonical(cidr: string): string {
  let c = canonicalCache.get(cidr);
  if (c === undefined) {
    c = computeCanonical(cidr);
    if (canonicalCache.size > 1 << 20) canonicalCache.clear();
    canonicalCache.set(cidr, c);
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
    return `${m[1]}.${m[2]}.${m[3]}.${m[4]}/32`;
  }
  const { addr, prefix } = parseCidr(cidr);
  if (prefix === (addr.includes(':') ? 128 : 32)) return decodeIpcacheKey(encodeIpcacheKey(addr));
  return decodeIpcacheLpmKey(encodeIpcacheLpmKey(cidr));
}
