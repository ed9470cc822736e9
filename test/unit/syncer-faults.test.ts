/**
 * The syncer on in-memory maps under injected faults (root-free).
 *
 * Random sequences of desired states (endpoints appearing, going, changing identity and
 * isolation, entries coming and going, pod addresses and prefixes moving between identities)
 * are fed to the syncer as diffs while chosen writes fail and maps run out of room; sometimes
 * the agent "restarts" (a new syncer adopts the same maps). After every single map write, every
 * endpoint's verdict for every probe (remote address, protocol, port) is evaluated the way the
 * datapath does it (record, kind bits, exact then wildcard keys, range blocks, ipcache exact then
 * longest prefix) and must be allowed by one of the desired states the syncer has not finished
 * realizing yet (the previous and the next one, or more while writes keep failing). Once the
 * failures stop, the maps must converge to exactly the last desired state.
 *
 * The reference verdict is computed from the desired state directly (rules against addresses),
 * not from map keys.
 */
import { Syncer, type SyncerMaps } from '../../agent/datapath/syncer.js';
import {
  entryKey,
  type DesiredDiff,
  type DesiredState,
  type EndpointState,
  type PolicyEntry,
} from '../../agent/desired.js';
import { FakeMap } from '../../maps/fake-map.js';
import { Direction, Identity, Kind, epKindsShift, Protocol } from '../../maps/abi.js';
import { decodeEndpoint } from '../../maps/codecs/endpoint.js';
import { decodePolicyKey, decodePolicyRangeKey } from '../../maps/codecs/policy.js';
import { decodeIpcacheKey, decodeIpcacheLpmKey, decodeIpcacheValue } from '../../maps/codecs/ipcache.js';
import { parsePrefix, prefixContains, type Prefix } from '../../agent/ipcache/cidr.js';
import { mulberry32 } from '../prng.js';

const KEYS = ['n/a', 'n/b', 'n/c'];
const IFINDEX = new Map(KEYS.map((k, i) => [k, 100 + i]));
const IDS = [300, 301, 302, 303];
const CIDR_ID = Identity.CLUSTER_MIN + (1 << 24) + 7;
const POD_ADDRS = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5'];
const PROBE_ADDRS = [...POD_ADDRS, '10.0.9.9', '198.18.0.1', '8.8.8.8'];
const PORTS = [80, 8001, 9999];
const PROTOS = ['TCP', 'UDP'] as const;

interface Probe {
  addr: string;
  proto: (typeof PROTOS)[number];
  port: number;
}
const PROBES: Probe[] = [];
for (const addr of PROBE_ADDRS)
  for (const proto of PROTOS) for (const port of PORTS) PROBES.push({ addr, proto, port });

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;

function randomEntry(r: () => number): PolicyEntry {
  const remoteIdentity = pick(r, [0, ...IDS, CIDR_ID, Identity.WORLD_IPV4, Identity.WORLD]);
  const protocol = pick(r, ['TCP', 'UDP', 'ANY'] as const);
  let port = 0;
  let endPort = 0;
  if (protocol !== 'ANY') {
    const kind = r();
    if (kind < 0.4) port = endPort = pick(r, [80, 9999]);
    else if (kind < 0.7) [port, endPort] = [8000, 8003];
  }
  return {
    direction: 'ingress',
    remoteIdentity,
    protocol,
    port,
    endPort,
    derivedFrom: [{ policy: 'n/p', direction: 'ingress', rule: Math.floor(r() * 3) }],
  };
}

function randomState(r: () => number): DesiredState {
  const endpoints = new Map<string, EndpointState>();
  for (const key of KEYS) {
    if (r() < 0.15) continue;
    const entries = new Map<string, PolicyEntry>();
    const n = Math.floor(r() * 5);
    for (let i = 0; i < n; i++) {
      const e = randomEntry(r);
      entries.set(entryKey(e), e);
    }
    endpoints.set(key, {
      key,
      namespace: 'n',
      name: key.slice(2),
      ips: [],
      identity: pick(r, IDS),
      ingressIsolated: r() < 0.8,
      egressIsolated: false,
      entries: [...entries.values()],
    });
  }
  const ipcache = new Map<string, { cidr: string; identity: number }>();
  for (const a of POD_ADDRS) if (r() < 0.8) ipcache.set(`${a}/32`, { cidr: `${a}/32`, identity: pick(r, IDS) });
  ipcache.set('0.0.0.0/0', { cidr: '0.0.0.0/0', identity: Identity.WORLD_IPV4 });
  if (r() < 0.6) ipcache.set('10.0.0.0/16', { cidr: '10.0.0.0/16', identity: Identity.UNMANAGED });
  if (r() < 0.5) ipcache.set('198.18.0.0/15', { cidr: '198.18.0.0/15', identity: CIDR_ID });
  return { endpoints, ipcache };
}

function diffOf(prev: DesiredState, next: DesiredState): DesiredDiff {
  const d: DesiredDiff = {
    endpointsChanged: [],
    endpointsRemoved: [],
    entriesAdded: new Map(),
    entriesRemoved: new Map(),
    ipcacheUpserted: [],
    ipcacheRemoved: [],
  };
  for (const [key, ep] of next.endpoints) {
    const old = prev.endpoints.get(key);
    if (!old || old.identity !== ep.identity || old.ingressIsolated !== ep.ingressIsolated) {
      d.endpointsChanged.push(ep);
      continue;
    }
    const before = new Map(old.entries.map((e) => [entryKey(e), e]));
    const after = new Map(ep.entries.map((e) => [entryKey(e), e]));
    const added = [...after].filter(([k]) => !before.has(k)).map(([, e]) => e);
    const removed = [...before].filter(([k]) => !after.has(k)).map(([, e]) => e);
    if (added.length) d.entriesAdded.set(key, added);
    if (removed.length) d.entriesRemoved.set(key, removed);
  }
  for (const key of prev.endpoints.keys()) if (!next.endpoints.has(key)) d.endpointsRemoved.push(key);
  for (const [c, e] of next.ipcache) if (prev.ipcache.get(c)?.identity !== e.identity) d.ipcacheUpserted.push(e);
  for (const c of prev.ipcache.keys()) if (!next.ipcache.has(c)) d.ipcacheRemoved.push(c);
  return d;
}

// ---- the reference: rules of a desired state against an address ----

const parsed = new Map<string, Prefix>();
const prefixOf = (c: string): Prefix => {
  let p = parsed.get(c);
  if (!p) parsed.set(c, (p = parsePrefix(c) as Prefix));
  return p;
};
const hostOf = (a: string): Prefix => prefixOf(`${a}/32`);

function resolve(cidrs: Iterable<[string, number]>, addr: string): number {
  let best: { bits: number; id: number } | undefined;
  const host = hostOf(addr);
  for (const [c, id] of cidrs) {
    const p = prefixOf(c);
    if (prefixContains(p, host) && (!best || p.bits > best.bits)) best = { bits: p.bits, id };
  }
  return best?.id ?? Identity.WORLD;
}

function referenceAllows(s: DesiredState, key: string, p: Probe): boolean {
  const ep = s.endpoints.get(key);
  if (!ep) return false; // no pod: its interface holds no record
  if (!ep.ingressIsolated) return true;
  const id = resolve(
    [...s.ipcache.values()].map((e) => [e.cidr, e.identity]),
    p.addr,
  );
  return ep.entries.some(
    (e) =>
      (e.remoteIdentity === 0 || e.remoteIdentity === id) &&
      (e.protocol === 'ANY' || e.protocol === p.proto) &&
      (e.port === 0 || (p.port >= e.port && p.port <= Math.max(e.port, e.endPort))),
  );
}

// ---- the datapath's verdict, from the maps ----

/** The maps decoded once per check: every probe then costs a few set lookups. */
interface KernelView {
  /** ifindex -> record */
  records: Map<number, ReturnType<typeof decodeEndpoint>>;
  exact: Map<string, number>;
  lpm: Array<[string, number]>;
  /** "endpoint|identity|direction|protocol|port" */
  policy: Set<string>;
  ranges: ReturnType<typeof decodePolicyRangeKey>[];
}

function viewOf(m: Record<keyof SyncerMaps, FakeMap>): KernelView {
  const records = new Map<number, ReturnType<typeof decodeEndpoint>>();
  for (const [k, v] of m.endpoints.entries()) records.set(k.readUInt32LE(0), decodeEndpoint(v));
  const exact = new Map<string, number>();
  for (const [k, v] of m.ipcache.entries()) exact.set(decodeIpcacheKey(k), decodeIpcacheValue(v));
  const lpm: Array<[string, number]> = [];
  for (const [k, v] of m.ipcacheLpm.entries()) lpm.push([decodeIpcacheLpmKey(k), decodeIpcacheValue(v)]);
  const policy = new Set<string>();
  for (const [k] of m.policy.entries()) {
    const d = decodePolicyKey(k);
    policy.add(`${d.endpointId}|${d.identity}|${d.direction}|${d.protocol}|${d.port}`);
  }
  return { records, exact, lpm, policy, ranges: [...m.policyRange.entries()].map(([k]) => decodePolicyRangeKey(k)) };
}

function kernelAllows(view: KernelView, key: string, p: Probe): boolean {
  const ep = view.records.get(IFINDEX.get(key) ?? 0);
  if (!ep) return false; // NO_ENDPOINT
  if (!(ep.flags & 1)) return true;
  const kinds = (ep.flags >>> epKindsShift(Direction.INGRESS)) & 0xff;
  const id = view.exact.get(`${p.addr}/32`) ?? resolve(view.lpm, p.addr);
  const proto = Protocol[p.proto];
  const hit = (identity: number, protocol: number, port: number): boolean =>
    view.policy.has(`${ep.endpointId}|${identity}|${Direction.INGRESS}|${protocol}|${port}`);
  const range = (identity: number): boolean => {
    for (const r of view.ranges) {
      const mask = r.portBits === 0 ? 0 : (0xffff << (16 - r.portBits)) & 0xffff;
      if (
        r.endpointId === ep.endpointId &&
        r.identity === identity &&
        r.direction === Direction.INGRESS &&
        r.protocol === proto &&
        (p.port & mask) === (r.port & mask)
      )
        return true;
    }
    return false;
  };
  return (
    (!!(kinds & Kind.ID_PORT) && hit(id, proto, p.port)) ||
    (!!(kinds & Kind.ID_RANGE) && range(id)) ||
    (!!(kinds & Kind.ID_PROTO) && hit(id, proto, 0)) ||
    (!!(kinds & Kind.ID_ALL) && hit(id, 0, 0)) ||
    (!!(kinds & Kind.ANY_PORT) && hit(0, proto, p.port)) ||
    (!!(kinds & Kind.ANY_RANGE) && range(0)) ||
    (!!(kinds & Kind.ANY_PROTO) && hit(0, proto, 0)) ||
    (!!(kinds & Kind.ANY_ALL) && hit(0, 0, 0))
  );
}

function freshMaps(): Record<keyof SyncerMaps, FakeMap> {
  return {
    endpoints: new FakeMap('weir_endpoints', 64),
    endpointRev: new FakeMap('weir_ep_rev', 1 << 14, { valueSize: 4 }),
    policy: new FakeMap('weir_policy', 1 << 16),
    policyRange: new FakeMap('weir_policy_rng', 1 << 16),
    ipcache: new FakeMap('weir_ipcache', 1 << 16),
    ipcacheLpm: new FakeMap('weir_ipc_lpm', 1 << 16),
    services: new FakeMap('weir_svc', 1 << 10),
    backends: new FakeMap('weir_svc_be', 1 << 10),
  };
}

interface RunResult {
  writes: number;
  failuresInjected: number;
  restarts: number;
}

function runSequence(seed: number): RunResult {
  const r = mulberry32(seed);
  const maps = freshMaps();
  let clock = 0;
  const newSyncer = () =>
    new Syncer(maps, { ifindexOf: (k) => IFINDEX.get(k), timers: false, now: () => clock, backoffMs: 10 });
  let syncer = newSyncer();
  const empty: DesiredState = { endpoints: new Map(), ipcache: new Map() };
  let current = empty;
  /** Desired states the maps may still hold parts of. */
  let window: DesiredState[] = [empty];
  let failing = true;
  const faultRate = pick(r, [0, 0.05, 0.2]);
  let injected = 0;
  let writes = 0;
  let restarts = 0;
  const fault = () => {
    if (failing && r() < faultRate) {
      injected++;
      return new Error('injected write failure');
    }
    return undefined;
  };
  const violations: string[] = [];
  /** What some desired state in flight allows, computed once per window. */
  let boundOf: { window: DesiredState[]; length: number; allows: Set<string> } | undefined;
  const windowAllows = (): Set<string> => {
    if (boundOf && boundOf.window === window && boundOf.length === window.length) return boundOf.allows;
    const allows = new Set<string>();
    for (const key of KEYS)
      for (const [i, p] of PROBES.entries())
        if (window.some((s) => referenceAllows(s, key, p))) allows.add(`${key}|${i}`);
    boundOf = { window, length: window.length, allows };
    return allows;
  };
  const check = (where: string) => {
    writes++;
    const view = viewOf(maps);
    const bound = windowAllows();
    for (const key of KEYS)
      for (const [i, p] of PROBES.entries()) {
        if (kernelAllows(view, key, p) && !bound.has(`${key}|${i}`)) {
          // recorded, not thrown: a throw inside a write would look like a failed write to the syncer
          violations.push(
            `seed ${seed}, ${where}: ${key} allows ${p.proto} ${p.addr}:${p.port}, which none of the ${window.length} desired state(s) in flight allows`,
          );
        }
      }
  };
  for (const m of Object.values(maps)) {
    m.fault = fault;
    m.onWrite = (w) => check(`after ${w.op} on ${w.map}`);
  }
  const converged = () => syncer.status().dirty === 0;
  syncer.setDesired(current);
  syncer.resync();
  const steps = 4 + Math.floor(r() * 8);
  for (let i = 0; i < steps; i++) {
    // room in the maps comes and goes
    maps.policy.maxEntries = r() < 0.3 ? 2 + Math.floor(r() * 10) : 1 << 16;
    maps.ipcacheLpm.maxEntries = r() < 0.2 ? 1 + Math.floor(r() * 3) : 1 << 16;
    const next = randomState(r);
    window.push(next);
    if (r() < 0.15) {
      // the agent restarts: a new syncer adopts whatever the maps hold
      restarts++;
      syncer.close();
      syncer = newSyncer();
      syncer.setDesired(next);
      syncer.resync();
    } else {
      syncer.update(diffOf(current, next));
      syncer.sync();
    }
    current = next;
    clock += r() < 0.5 ? 5 : 1000;
    if (r() < 0.3) syncer.sync();
    if (converged()) window = [current];
  }
  expect(violations.slice(0, 3)).toEqual([]);
  // failures stop: the maps converge to exactly the last desired state
  failing = false;
  maps.policy.maxEntries = 1 << 16;
  maps.ipcacheLpm.maxEntries = 1 << 16;
  for (let i = 0; i < 5 && !converged(); i++) {
    clock += 60_000;
    syncer.sync();
  }
  expect({ seed, dirty: syncer.status().dirty }).toEqual({ seed, dirty: 0 });
  for (const key of KEYS)
    for (const p of PROBES)
      expect({ seed, key, p, allowed: kernelAllows(viewOf(maps), key, p) }).toEqual({
        seed,
        key,
        p,
        allowed: referenceAllows(current, key, p),
      });
  // exactly: the ipcache holds the desired entries, and no entry belongs to an endpoint id without a record
  const ipc = new Map<string, number>();
  for (const [k, v] of maps.ipcache.entries()) ipc.set(decodeIpcacheKey(k), decodeIpcacheValue(v));
  for (const [k, v] of maps.ipcacheLpm.entries()) ipc.set(decodeIpcacheLpmKey(k), decodeIpcacheValue(v));
  expect({ seed, ipc: Object.fromEntries(ipc) }).toEqual({
    seed,
    ipc: Object.fromEntries([...current.ipcache.values()].map((e) => [e.cidr, e.identity])),
  });
  const ids = new Set([...maps.endpoints.entries()].map(([, v]) => decodeEndpoint(v).endpointId));
  expect(maps.endpoints.size).toBe(current.endpoints.size);
  for (const [k] of maps.policy.entries())
    expect({ seed, id: ids.has(decodePolicyKey(k).endpointId) }).toEqual({ seed, id: true });
  for (const [k] of maps.policyRange.entries())
    expect({ seed, id: ids.has(decodePolicyRangeKey(k).endpointId) }).toEqual({ seed, id: true });
  expect(violations.slice(0, 3)).toEqual([]);
  // and a resync finds nothing to repair
  expect({ seed, repaired: syncer.resync().repaired }).toEqual({ seed, repaired: 0 });
  return { writes, failuresInjected: injected, restarts };
}

describe('syncer under injected faults (in-memory maps)', () => {
  it('never allows what neither the previous nor the next desired state allows, after any single write, and converges once failures stop', () => {
    const budgetMs = Number(process.env.WEIR_SYNCER_FUZZ_MS ?? 45_000);
    const t0 = performance.now();
    let sequences = 0;
    let writes = 0;
    let injected = 0;
    let restarts = 0;
    const first = Number(process.env.WEIR_SYNCER_FUZZ_SEED ?? 1);
    for (let seed = first; seed <= 5000 && (sequences < 100 || performance.now() - t0 < budgetMs); seed++) {
      const res = runSequence(seed);
      sequences++;
      writes += res.writes;
      injected += res.failuresInjected;
      restarts += res.restarts;
    }
    console.log(
      `syncer fault test: ${sequences} sequences, ${writes} checked writes, ${injected} injected failures, ${restarts} restarts`,
    );
    expect(sequences).toBeGreaterThanOrEqual(100);
    expect(injected).toBeGreaterThan(0);
    expect(restarts).toBeGreaterThan(0);
  }, 120_000);
});
