/**
 * Numeric identities for label sets (cluster scope, from 256) and for CIDRs (node-local
 * scope, LOCAL_SCOPE_IDENTITY_BIT set). Numbers come from a hash of the canonical key with
 * linear probing, so the same inputs give the same numbers across agent restarts (pinned
 * maps stay valid while the agent re-adopts them) independently of event order, except
 * on hash collisions. Reference counted; a released number is kept for a grace period so
 * a pod re-created with the same labels gets it back and in-flight map entries stay true.
 */
import { CLUSTER_IDENTITY_MIN, LOCAL_SCOPE_IDENTITY_BIT } from '../desired.js';
import type { Labels } from '../store/types.js';
import { filterPodLabels, identityLabelList } from './labels.js';

export interface Clock {
  now(): number;
}
export const systemClock: Clock = { now: () => Date.now() };

/** Default time a released identity keeps its number. */
export const DEFAULT_IDENTITY_GRACE_MS = 30_000;

interface Slot<T> {
  id: number;
  key: string;
  value: T;
  refs: number;
  /** When refs reached 0: the number is freed at releasedAt + grace. */
  releasedAt?: number;
}

/** FNV-1a, 32 bit. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Refcounted key -> number map over a numeric range, hashed placement, grace on release. */
export class NumberAllocator<T> {
  private readonly byKey = new Map<string, Slot<T>>();
  private readonly byId = new Map<number, Slot<T>>();
  /** Slots whose references reached zero, oldest first (some may have been re-acquired since). */
  private released: Slot<T>[] = [];

  constructor(
    private readonly min: number,
    private readonly size: number,
    private readonly clock: Clock,
    private readonly graceMs: number,
  ) {}

  /** Takes a reference. `live` is true when the key had no references before. */
  acquire(key: string, make: () => T): { id: number; value: T; live: boolean } {
    let s = this.byKey.get(key);
    if (s) {
      s.refs++;
      const live = s.refs === 1;
      delete s.releasedAt;
      return { id: s.id, value: s.value, live };
    }
    let id = this.min + (fnv1a(key) % this.size);
    for (let probes = 0; this.byId.has(id); probes++) {
      if (probes >= this.size) throw new Error(`identity space exhausted (${this.size} numbers in use)`);
      id = id + 1 >= this.min + this.size ? this.min : id + 1;
    }
    s = { id, key, value: make(), refs: 1 };
    this.byKey.set(key, s);
    this.byId.set(id, s);
    return { id, value: s.value, live: true };
  }

  /** Drops a reference. Returns true when that was the last one (the key is no longer live). */
  release(id: number): boolean {
    const s = this.byId.get(id);
    if (!s || s.refs === 0) throw new Error(`identity ${id} released more often than acquired`);
    s.refs--;
    if (s.refs === 0) {
      s.releasedAt = this.clock.now();
      this.released.push(s);
    }
    return s.refs === 0;
  }

  /** Frees numbers whose grace period has passed; returns them. Costs O(released), not O(allocated). */
  gc(): number[] {
    if (this.released.length === 0) return [];
    const now = this.clock.now();
    const freed: number[] = [];
    const keep: Slot<T>[] = [];
    for (const s of this.released) {
      if (s.refs > 0 || s.releasedAt === undefined || this.byId.get(s.id) !== s) continue; // re-acquired or already freed
      if (now - s.releasedAt >= this.graceMs) {
        this.byId.delete(s.id);
        this.byKey.delete(s.key);
        freed.push(s.id);
      } else keep.push(s);
    }
    this.released = keep;
    return freed;
  }

  get(id: number): T | undefined {
    return this.byId.get(id)?.value;
  }
  lookup(key: string): number | undefined {
    return this.byKey.get(key)?.id;
  }
  refs(id: number): number {
    return this.byId.get(id)?.refs ?? 0;
  }
  /** Values with at least one reference. */
  *live(): IterableIterator<[number, T]> {
    for (const s of this.byId.values()) if (s.refs > 0) yield [s.id, s.value];
  }
  /** Every allocated number, including those in their grace period. */
  get allocated(): number {
    return this.byId.size;
  }
}

/** What a cluster identity stands for. */
export interface Identity {
  id: number;
  namespace: string;
  /** Pod labels after filterPodLabels. */
  podLabels: Labels;
  nsLabels: Labels;
  /** Sorted "key=value" list (namespace labels prefixed "ns:"); computed on each read. */
  readonly labels: string[];
}

/** Key of an identity in its allocator: its label list joined by NUL (escaped in the labels). */
const LABEL_SEPARATOR = '\u0000';

/**
 * An identity as the allocator holds it: the label list is kept once, as the allocator's key,
 * and split when read (flows, explain and status read it; the compiler does not), so an identity
 * costs one string instead of one per label.
 */
class LabelledIdentity implements Identity {
  id = 0;
  constructor(
    readonly namespace: string,
    readonly podLabels: Labels,
    readonly nsLabels: Labels,
    private readonly key: string,
  ) {}
  get labels(): string[] {
    return this.key.split(LABEL_SEPARATOR);
  }
}

export interface IdentityAllocatorOptions {
  clock?: Clock;
  graceMs?: number;
}

/** Pod label sets -> identities from CLUSTER_IDENTITY_MIN up to the local-scope bit. */
export class IdentityAllocator {
  private readonly numbers: NumberAllocator<Identity>;

  constructor(opts: IdentityAllocatorOptions = {}) {
    this.numbers = new NumberAllocator<Identity>(
      CLUSTER_IDENTITY_MIN,
      LOCAL_SCOPE_IDENTITY_BIT - CLUSTER_IDENTITY_MIN,
      opts.clock ?? systemClock,
      opts.graceMs ?? DEFAULT_IDENTITY_GRACE_MS,
    );
  }

  /** Takes a reference on the identity of a pod; `live` is true when it just came into use. */
  acquire(namespace: string, podLabels: Labels, nsLabels: Labels): { identity: Identity; live: boolean } {
    const filtered = filterPodLabels(podLabels);
    const key = identityLabelList(namespace, filtered, nsLabels).join(LABEL_SEPARATOR);
    const r = this.numbers.acquire(key, () => new LabelledIdentity(namespace, filtered, nsLabels, key));
    r.value.id = r.id;
    return { identity: r.value, live: r.live };
  }

  /** Drops a reference; true when the identity is no longer used by any pod. */
  release(id: number): boolean {
    return this.numbers.release(id);
  }
  gc(): number[] {
    return this.numbers.gc();
  }
  get(id: number): Identity | undefined {
    return this.numbers.get(id);
  }
  refs(id: number): number {
    return this.numbers.refs(id);
  }
  *live(): IterableIterator<Identity> {
    for (const [, v] of this.numbers.live()) yield v;
  }
  get allocated(): number {
    return this.numbers.allocated;
  }
}

/** Prefixes named by policies -> node-local identities (LOCAL_SCOPE_IDENTITY_BIT set). */
export class CidrIdentityAllocator {
  private readonly numbers: NumberAllocator<string>;

  constructor(opts: IdentityAllocatorOptions = {}) {
    this.numbers = new NumberAllocator<string>(
      LOCAL_SCOPE_IDENTITY_BIT + 1,
      LOCAL_SCOPE_IDENTITY_BIT - 1,
      opts.clock ?? systemClock,
      opts.graceMs ?? DEFAULT_IDENTITY_GRACE_MS,
    );
  }
  /** `cidr` must be canonical. */
  acquire(cidr: string): { id: number; live: boolean } {
    const r = this.numbers.acquire(cidr, () => cidr);
    return { id: r.id, live: r.live };
  }
  release(id: number): boolean {
    return this.numbers.release(id);
  }
  gc(): number[] {
    return this.numbers.gc();
  }
  cidrOf(id: number): string | undefined {
    return this.numbers.get(id);
  }
  lookup(cidr: string): number | undefined {
    return this.numbers.lookup(cidr);
  }
}

export function isCidrIdentity(id: number): boolean {
  return (id & LOCAL_SCOPE_IDENTITY_BIT) !== 0;
}
