/**
 * Service frontends and their backends in the datapath's maps (weir_svc, weir_svc_be): what the
 * syncer wants for each frontend, what it has written, and the writes between the two, in the
 * order that never sends a frontend to a backend that neither the previous nor the next desired
 * state has:
 *
 * - A frontend's backends are written as a new backend set (a number never used before on this
 *   node, slots 0..n-1) while its record still names the old set; then the record is replaced in
 *   one write (it names the new set and its count); only then are the old set's slots deleted.
 *   A reader sees the old set whole or the new set whole, never a mix.
 * - Removal: the record first, then its set's slots.
 * - A write that fails undoes what this attempt added (a batch update may stop partway) and
 *   throws; the previous state stays whole and the syncer retries the frontend with backoff.
 *
 * Slots keep their backend across sets where they can (a backend that stays keeps its slot, new
 * ones fill the holes), so ClientIP affinity, which remembers a slot and its backend, survives
 * changes to the other backends.
 */
import type { ServiceFrontend, ServiceBackend, L4Protocol } from '../desired.js';
import type { KernelMap } from '../../maps/kernel-map.js';
import { Protocol, SvcFlag, SvcScope, Limits } from '../../maps/abi.js';
import {
  decodeSvcBackendKey,
  decodeSvcBackendValue,
  decodeSvcKey,
  decodeSvcValue,
  encodeSvcBackendKey,
  encodeSvcBackendValue,
  encodeSvcKey,
  encodeSvcValue,
  type SvcValue,
} from '../../maps/codecs/service.js';

export interface ServiceMaps {
  services: KernelMap;
  backends: KernelMap;
}

/** One backend slot as written: address, port, and whether it runs on another node. */
interface Slot {
  addr: string;
  port: number;
  remote?: boolean;
}

/** What the syncer has written for one frontend (the map key's hex names it). */
interface HaveFrontend {
  value: SvcValue;
  /** Backends by slot, as written under value.backendSet. */
  slots: Slot[];
}

const PROTO: Record<L4Protocol, number> = { TCP: Protocol.TCP, UDP: Protocol.UDP, SCTP: Protocol.SCTP };
const PROTO_NAME = new Map<number, L4Protocol>([
  [Protocol.TCP, 'TCP'],
  [Protocol.UDP, 'UDP'],
  [Protocol.SCTP, 'SCTP'],
]);

/** The queue key of the slots no record names. */
const GARBAGE = '';

const isUnspecified = (a: string): boolean => a === '0.0.0.0' || a === '::';

/** The weir_svc key of a frontend (NodePort frontends: every address of the node). */
export function frontendMapKey(f: Pick<ServiceFrontend, 'address' | 'port' | 'protocol' | 'scope'>): Buffer {
  return encodeSvcKey({
    addr: f.address,
    port: f.port,
    protocol: PROTO[f.protocol],
    scope: f.scope === 'nodePort' || isUnspecified(f.address) ? SvcScope.NODE_PORT : SvcScope.CLUSTER_IP,
  });
}

/** "address|port|protocol" of a weir_svc key, as frontendKey() spells it (for messages). */
export function frontendLabel(key: Buffer): string {
  const k = decodeSvcKey(key);
  return `${k.addr}|${k.port}|${PROTO_NAME.get(k.protocol) ?? k.protocol}`;
}

const backendId = (b: { addr: string; port: number }): string => `${b.addr}|${b.port}`;

/**
 * Slots for `next` that keep every backend already in `prev` where it was: survivors stay, new
 * backends fill the holes, and the last slots move into any holes left so 0..n-1 is dense.
 */
export function assignSlots(prev: ReadonlyArray<Slot>, next: ReadonlyArray<ServiceBackend>): Slot[] {
  const want = new Map(
    next.map((b): [string, Slot] => [
      backendId({ addr: b.ip, port: b.port }),
      { addr: b.ip, port: b.port, ...(b.remote ? { remote: true } : {}) },
    ]),
  );
  const slots: Array<Slot | undefined> = prev.map((b) => want.get(backendId(b)));
  for (const b of slots) if (b) want.delete(backendId(b));
  const fresh = [...want.values()].sort((a, b) => (a.addr === b.addr ? a.port - b.port : a.addr < b.addr ? -1 : 1));
  for (let i = 0; i < slots.length && fresh.length > 0; i++) if (!slots[i]) slots[i] = fresh.shift();
  slots.push(...fresh);
  // holes left by removals: the last slots move into them, so 0..n-1 is dense
  for (let i = 0; i < slots.length; i++) {
    if (slots[i]) continue;
    while (slots.length > i && !slots[slots.length - 1]) slots.pop();
    if (slots.length > i) slots[i] = slots.pop();
  }
  return slots as Slot[];
}

export class ServiceBook {
  /** Desired frontends by their map key's hex. */
  private readonly want = new Map<string, ServiceFrontend>();
  private readonly have = new Map<string, HaveFrontend>();
  /** frontendKey() -> map key hex, for removals named by frontendKey. */
  private readonly hexByFrontend = new Map<string, string>();
  /** Backend slots written but named by no record (a failed cleanup, or found at adoption). */
  private readonly garbage = new Map<string, Buffer>();
  private nextSet = 1;
  private nextSvcId = 1;

  constructor(private readonly maps: ServiceMaps) {}

  /** Every key the desired state names or the maps hold ('' = slots no record names, to delete). */
  keys(): string[] {
    return [...new Set([...this.want.keys(), ...this.have.keys(), ...(this.garbage.size > 0 ? [GARBAGE] : [])])];
  }

  /** The frontend's map-key hex; `undefined` when nothing is known of it. */
  set(f: ServiceFrontend): string {
    const hex = frontendMapKey(f).toString('hex');
    this.want.set(hex, f);
    this.hexByFrontend.set(`${f.address}|${f.port}|${f.protocol}`, hex);
    return hex;
  }

  /** Removes a frontend named by frontendKey() ("address|port|protocol"); returns its hex, if known. */
  unset(frontend: string): string | undefined {
    let hex = this.hexByFrontend.get(frontend);
    if (hex === undefined) {
      const [address, port, protocol] = frontend.split('|');
      if (address === undefined || !(protocol in PROTO)) return undefined;
      hex = frontendMapKey({
        address,
        port: Number(port),
        protocol: protocol as L4Protocol,
        scope: isUnspecified(address) ? 'nodePort' : 'clusterIP',
      }).toString('hex');
    }
    this.want.delete(hex);
    this.hexByFrontend.delete(frontend);
    return hex;
  }

  /** Replaces every desired frontend; returns every key whose state may have changed. */
  setAll(frontends: Iterable<ServiceFrontend>): string[] {
    const before = new Set(this.want.keys());
    this.want.clear();
    this.hexByFrontend.clear();
    for (const f of frontends) this.set(f);
    return [...new Set([...before, ...this.want.keys()])];
  }

  label(hex: string): string {
    return hex === GARBAGE ? 'unnamed backend slots' : frontendLabel(Buffer.from(hex, 'hex'));
  }

  /** Whether the frontend's maps equal its desired state. */
  converged(hex: string): boolean {
    const w = this.want.get(hex);
    const h = this.have.get(hex);
    if (!w) return !h;
    if (!h) return false;
    return this.sameValue(w, h) && this.sameBackends(w, h);
  }

  /**
   * Makes one frontend's maps equal its desired state (see the file comment for the order).
   * Returns the number of writes; throws after undoing this attempt's additions.
   */
  sync(hex: string): number {
    const writes = this.syncFrontend(hex);
    if (this.garbage.size > 0)
      throw new Error(`${this.garbage.size} backend slot(s) that no frontend names could not be deleted yet`);
    return writes;
  }

  private syncFrontend(hex: string): number {
    let writes = this.collectGarbage();
    if (hex === GARBAGE) return writes;
    const key = Buffer.from(hex, 'hex');
    const w = this.want.get(hex);
    const h = this.have.get(hex);
    if (!w) {
      if (!h) return writes;
      this.maps.services.delete(key);
      writes++;
      this.have.delete(hex);
      writes += this.dropSet(h.value.backendSet, h.slots.length);
      return writes;
    }
    if (w.backends.length > Limits.SVC_BACKENDS_MAX)
      throw new Error(
        `${w.backends.length} backends, more than the datapath's ${Limits.SVC_BACKENDS_MAX} per frontend`,
      );
    if (h && this.sameBackends(w, h)) {
      if (this.sameValue(w, h)) return writes;
      const value = { ...h.value, ...this.flagsOf(w) };
      this.maps.services.update(key, encodeSvcValue(value));
      this.have.set(hex, { value, slots: h.slots });
      return writes + 1;
    }
    // a new backend set, written whole before the record names it
    const slots = assignSlots(h?.slots ?? [], w.backends);
    const set = slots.length === 0 ? 0 : this.takeSet();
    const entries = slots.map((b, slot): [Buffer, Buffer] => [
      encodeSvcBackendKey({ backendSet: set, slot }),
      encodeSvcBackendValue(b),
    ]);
    const value: SvcValue = {
      svcId: h?.value.svcId ?? this.nextSvcId++,
      backendSet: set,
      count: slots.length,
      ...this.flagsOf(w),
    };
    try {
      if (entries.length > 0) this.maps.backends.updateBatch(entries);
      this.maps.services.update(key, encodeSvcValue(value));
    } catch (err) {
      this.undo(entries.map(([k]) => k));
      throw err;
    }
    writes += entries.length + 1;
    this.have.set(hex, { value, slots });
    if (h) writes += this.dropSet(h.value.backendSet, h.slots.length);
    return writes;
  }

  /**
   * Reads both maps into the books (after a restart: adopts them). Returns how many differences
   * from the books it found. Slots no record names are deleted by the next sync.
   */
  readRealized(): number {
    let drift = 0;
    const bySet = new Map<number, Map<number, Slot>>();
    const keyOf = new Map<string, Buffer>();
    for (const [k, v] of this.maps.backends.entries()) {
      const { backendSet, slot } = decodeSvcBackendKey(k);
      let m = bySet.get(backendSet);
      if (!m) bySet.set(backendSet, (m = new Map()));
      m.set(slot, decodeSvcBackendValue(v));
      keyOf.set(k.toString('hex'), k);
      this.nextSet = Math.max(this.nextSet, backendSet + 1);
    }
    const found = new Map<string, HaveFrontend>();
    const named = new Set<number>();
    for (const [k, v] of this.maps.services.entries()) {
      const value = decodeSvcValue(v);
      const m = bySet.get(value.backendSet) ?? new Map<number, Slot>();
      const slots: Slot[] = [];
      for (let i = 0; i < value.count; i++) {
        const b = m.get(i);
        // a slot that is missing: the record is rewritten with a whole set by the next sync
        slots.push(b ?? { addr: '', port: 0 });
      }
      found.set(k.toString('hex'), { value, slots });
      named.add(value.backendSet);
      this.nextSvcId = Math.max(this.nextSvcId, value.svcId + 1);
    }
    for (const [hex, h] of this.have) {
      const f = found.get(hex);
      if (!f || JSON.stringify(f) !== JSON.stringify(h)) drift++;
    }
    for (const hex of found.keys()) if (!this.have.has(hex)) drift++;
    this.have.clear();
    for (const [hex, f] of found) this.have.set(hex, f);
    this.garbage.clear();
    for (const [hex, k] of keyOf) {
      const { backendSet, slot } = decodeSvcBackendKey(k);
      const owner = [...found.values()].find((f) => f.value.backendSet === backendSet);
      if (!named.has(backendSet) || !owner || slot >= owner.value.count) {
        this.garbage.set(hex, k);
        drift++;
      }
    }
    return drift;
  }

  private flagsOf(w: ServiceFrontend): Pick<SvcValue, 'flags' | 'affinityTimeout'> {
    return {
      flags: (w.affinityTimeoutSeconds > 0 ? SvcFlag.AFFINITY : 0) | (w.externalLocal ? SvcFlag.EXTERNAL_LOCAL : 0),
      affinityTimeout: w.affinityTimeoutSeconds,
    };
  }

  private sameValue(w: ServiceFrontend, h: HaveFrontend): boolean {
    const f = this.flagsOf(w);
    return h.value.flags === f.flags && h.value.affinityTimeout === f.affinityTimeout;
  }

  private sameBackends(w: ServiceFrontend, h: HaveFrontend): boolean {
    if (w.backends.length !== h.slots.length) return false;
    const have = new Map(h.slots.map((s) => [backendId(s), s.remote === true]));
    return w.backends.every((b) => have.get(backendId({ addr: b.ip, port: b.port })) === (b.remote === true));
  }

  private takeSet(): number {
    const s = this.nextSet;
    this.nextSet = this.nextSet >= 0xffffffff ? 1 : this.nextSet + 1;
    return s;
  }

  /** Deletes a set no record names any more; what fails to go is kept as garbage for the next sync. */
  private dropSet(set: number, count: number): number {
    const keys = Array.from({ length: count }, (_, slot) => encodeSvcBackendKey({ backendSet: set, slot }));
    for (const k of keys) this.garbage.set(k.toString('hex'), k);
    return this.collectGarbage();
  }

  private collectGarbage(): number {
    let n = 0;
    for (const [hex, k] of [...this.garbage]) {
      try {
        this.maps.backends.delete(k);
        n++;
        this.garbage.delete(hex);
      } catch {
        return n; // unreferenced slots widen nothing: retried with the next sync
      }
    }
    return n;
  }

  private undo(keys: Buffer[]): void {
    for (const k of keys) {
      try {
        this.maps.backends.delete(k);
      } catch {
        this.garbage.set(k.toString('hex'), k); // unreferenced: retried later
      }
    }
  }
}
