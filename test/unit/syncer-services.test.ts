/**
 * The syncer's Service frontends on in-memory maps under injected faults (root-free).
 *
 * Random sequences of Service states (frontends appearing, going, changing backends, affinity)
 * are fed to the syncer as diffs while chosen writes to weir_svc / weir_svc_be fail and the
 * backends map runs out of room; sometimes the agent "restarts" (a new syncer adopts the maps).
 * After every single map write, each frontend is resolved the way the datapath does it (the
 * record, then slots 0..count-1 of the backend set it names) and every outcome — a backend, a
 * drop (no backend: count 0 or a missing slot), or no translation (no record) — must be one that
 * a desired state still in flight (the previous, the next, or more while writes keep failing)
 * gives. Once failures stop the maps converge to exactly the last state, with no slot left that
 * no record names, and a resync finds nothing to repair.
 */
import { Syncer, type SyncerMaps } from '../../agent/datapath/syncer.js';
import { assignSlots, frontendMapKey } from '../../agent/datapath/services.js';
import { frontendKey, type DesiredDiff, type DesiredState, type ServiceFrontend } from '../../agent/desired.js';
import { FakeMap } from '../../maps/fake-map.js';
import {
  decodeSvcBackendKey,
  decodeSvcBackendValue,
  decodeSvcValue,
  encodeSvcBackendKey,
} from '../../maps/codecs/service.js';
import { SvcFlag } from '../../maps/abi.js';
import { mulberry32 } from '../prng.js';

const FRONTENDS: Array<Pick<ServiceFrontend, 'address' | 'port' | 'protocol'>> = [
  { address: '10.96.0.10', port: 53, protocol: 'UDP' },
  { address: '10.96.0.10', port: 53, protocol: 'TCP' },
  { address: '10.96.7.7', port: 80, protocol: 'TCP' },
  { address: 'fd00:96::7', port: 80, protocol: 'TCP' },
];
const POOL4 = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5'];
const POOL6 = ['fd00::1', 'fd00::2', 'fd00::3'];

function randomState(r: () => number): Map<string, ServiceFrontend> {
  const out = new Map<string, ServiceFrontend>();
  for (const f of FRONTENDS) {
    if (r() < 0.25) continue;
    const pool = f.address.includes(':') ? POOL6 : POOL4;
    const n = Math.floor(r() * (pool.length + 1));
    const ips = [...pool].sort(() => r() - 0.5).slice(0, n);
    const port = r() < 0.5 ? f.port : 8080;
    const fe: ServiceFrontend = {
      service: 'ns/svc',
      scope: 'clusterIP',
      ...f,
      portName: '',
      affinityTimeoutSeconds: r() < 0.3 ? 10800 : 0,
      backends: ips.map((ip) => ({ ip, port, ready: true, serving: true, terminating: false })),
      externalLocal: false,
    };
    out.set(frontendKey(fe), fe);
  }
  return out;
}

const stateOf = (services: Map<string, ServiceFrontend>): DesiredState => ({
  endpoints: new Map(),
  ipcache: new Map(),
  services,
});

function diffOf(a: Map<string, ServiceFrontend>, b: Map<string, ServiceFrontend>): DesiredDiff {
  const upserted = [...b.values()].filter((f) => JSON.stringify(a.get(frontendKey(f))) !== JSON.stringify(f));
  return {
    endpointsChanged: [],
    endpointsRemoved: [],
    entriesAdded: new Map(),
    entriesRemoved: new Map(),
    ipcacheUpserted: [],
    ipcacheRemoved: [],
    servicesUpserted: upserted,
    servicesRemoved: [...a.keys()].filter((k) => !b.has(k)),
  };
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

/** What the datapath can do with a new connection to `f`: 'absent' (untranslated), 'drop', or backends "ip|port". */
function outcomes(
  maps: Record<keyof SyncerMaps, FakeMap>,
  f: Pick<ServiceFrontend, 'address' | 'port' | 'protocol'>,
): string[] {
  const rec = maps.services.lookup(frontendMapKey({ ...f, scope: 'clusterIP' }));
  if (!rec) return ['absent'];
  const v = decodeSvcValue(rec);
  if (v.count === 0) return ['drop'];
  const out: string[] = [];
  for (let slot = 0; slot < v.count; slot++) {
    const b = maps.backends.lookup(encodeSvcBackendKey({ backendSet: v.backendSet, slot }));
    if (!b) out.push('drop');
    else {
      const d = decodeSvcBackendValue(b);
      out.push(`${d.addr}|${d.port}`);
    }
  }
  return out;
}

function allowedBy(
  state: Map<string, ServiceFrontend>,
  f: Pick<ServiceFrontend, 'address' | 'port' | 'protocol'>,
): Set<string> {
  const fe = state.get(frontendKey(f));
  if (!fe) return new Set(['absent']);
  if (fe.backends.length === 0) return new Set(['drop']);
  return new Set(fe.backends.map((b) => `${b.ip}|${b.port}`));
}

function runSequence(seed: number): { writes: number; injected: number; restarts: number } {
  const r = mulberry32(seed);
  const maps = freshMaps();
  let clock = 0;
  const newSyncer = () =>
    new Syncer(maps, { ifindexOf: () => undefined, timers: false, now: () => clock, backoffMs: 10 });
  let syncer = newSyncer();
  let current = new Map<string, ServiceFrontend>();
  let window: Array<Map<string, ServiceFrontend>> = [current];
  let failing = true;
  const faultRate = [0, 0.05, 0.2][Math.floor(r() * 3)];
  let injected = 0;
  let writes = 0;
  let restarts = 0;
  const violations: string[] = [];
  const check = (where: string) => {
    writes++;
    for (const f of FRONTENDS) {
      const ok = new Set(window.flatMap((s) => [...allowedBy(s, f)]));
      for (const o of outcomes(maps, f))
        if (!ok.has(o))
          violations.push(
            `seed ${seed}, ${where}: ${frontendKey(f)} -> ${o}, which none of ${window.length} state(s) gives`,
          );
    }
  };
  for (const m of [maps.services, maps.backends]) {
    m.fault = () => {
      if (failing && r() < faultRate) {
        injected++;
        return new Error('injected write failure');
      }
      return undefined;
    };
    m.onWrite = (w) => check(`after ${w.op} on ${w.map}`);
  }
  syncer.setDesired(stateOf(current));
  syncer.resync();
  const steps = 4 + Math.floor(r() * 8);
  for (let i = 0; i < steps; i++) {
    maps.backends.maxEntries = r() < 0.2 ? 2 + Math.floor(r() * 6) : 1 << 10;
    const next = randomState(r);
    window.push(next);
    if (r() < 0.15) {
      restarts++;
      syncer.close();
      syncer = newSyncer();
      syncer.setDesired(stateOf(next));
      syncer.resync();
    } else {
      syncer.update(diffOf(current, next));
      syncer.sync();
    }
    current = next;
    clock += r() < 0.5 ? 5 : 1000;
    if (r() < 0.3) syncer.sync();
    if (syncer.status().dirty === 0) window = [current];
  }
  expect(violations.slice(0, 3)).toEqual([]);
  failing = false;
  maps.backends.maxEntries = 1 << 10;
  for (let i = 0; i < 5 && syncer.status().dirty > 0; i++) {
    clock += 60_000;
    syncer.sync();
  }
  expect({ seed, dirty: syncer.status().dirty }).toEqual({ seed, dirty: 0 });
  for (const f of FRONTENDS)
    expect({ seed, f, got: new Set(outcomes(maps, f)) }).toEqual({ seed, f, got: allowedBy(current, f) });
  // no slot that no record names, every record's set dense, flags as desired
  const sets = new Map<number, number>();
  for (const [, v] of maps.services.entries()) sets.set(decodeSvcValue(v).backendSet, decodeSvcValue(v).count);
  for (const [k] of maps.backends.entries()) {
    const { backendSet, slot } = decodeSvcBackendKey(k);
    expect({ seed, backendSet, inUse: slot < (sets.get(backendSet) ?? 0) }).toEqual({ seed, backendSet, inUse: true });
  }
  for (const fe of current.values()) {
    const v = decodeSvcValue(maps.services.lookup(frontendMapKey(fe)) ?? Buffer.alloc(16));
    expect({ seed, affinity: (v.flags & SvcFlag.AFFINITY) !== 0, timeout: v.affinityTimeout }).toEqual({
      seed,
      affinity: fe.affinityTimeoutSeconds > 0,
      timeout: fe.affinityTimeoutSeconds,
    });
  }
  expect({ seed, repaired: syncer.resync().repaired }).toEqual({ seed, repaired: 0 });
  return { writes, injected, restarts };
}

describe('syncer: Service frontends under injected faults (in-memory maps)', () => {
  it('never sends a frontend to a backend that neither the previous nor the next state has, after any single write, and converges', () => {
    let writes = 0;
    let injected = 0;
    let restarts = 0;
    for (let seed = 1; seed <= 400; seed++) {
      const res = runSequence(seed);
      writes += res.writes;
      injected += res.injected;
      restarts += res.restarts;
    }
    console.log(
      `service syncer fault test: 400 sequences, ${writes} checked writes, ${injected} injected failures, ${restarts} restarts`,
    );
    expect(injected).toBeGreaterThan(0);
    expect(restarts).toBeGreaterThan(0);
  });

  it('repairs drift: a slot or record changed by hand is found and rewritten by the next resync', () => {
    const maps = freshMaps();
    const syncer = new Syncer(maps, { ifindexOf: () => undefined, timers: false });
    const fe: ServiceFrontend = {
      service: 'ns/db',
      scope: 'clusterIP',
      address: '10.96.1.1',
      port: 5432,
      protocol: 'TCP',
      portName: 'pg',
      affinityTimeoutSeconds: 0,
      backends: ['10.0.0.1', '10.0.0.2'].map((ip) => ({
        ip,
        port: 5432,
        ready: true,
        serving: true,
        terminating: false,
      })),
      externalLocal: false,
    };
    syncer.setDesired(stateOf(new Map([[frontendKey(fe), fe]])));
    expect(syncer.resync().failures).toEqual([]);
    const [k] = [...maps.backends.entries()][0];
    maps.backends.tamper(k, undefined);
    expect(syncer.resync().repaired).toBeGreaterThan(0);
    expect(new Set(outcomes(maps, fe))).toEqual(new Set(['10.0.0.1|5432', '10.0.0.2|5432']));
    expect(syncer.resync().repaired).toBe(0);
  });

  it('keeps a backend in its slot when others come and go', () => {
    const b = (ip: string) => ({ ip, port: 80, ready: true, serving: true, terminating: false });
    const prev = [
      { addr: 'a', port: 80 },
      { addr: 'b', port: 80 },
      { addr: 'c', port: 80 },
    ];
    expect(assignSlots(prev, [b('a'), b('c'), b('d')])).toEqual([
      { addr: 'a', port: 80 },
      { addr: 'd', port: 80 },
      { addr: 'c', port: 80 },
    ]);
    expect(assignSlots(prev, [b('c')])).toEqual([{ addr: 'c', port: 80 }]);
    expect(assignSlots(prev, [b('a'), b('b'), b('c'), b('e')]).map((x) => x.addr)).toEqual(['a', 'b', 'c', 'e']);
  });

  it('writes whether a NodePort backend runs on another node, and rewrites the set when only that changes', () => {
    const maps = freshMaps();
    const syncer = new Syncer(maps, { ifindexOf: () => undefined, timers: false });
    const fe = (remote: boolean): ServiceFrontend => ({
      service: 'ns/web',
      scope: 'nodePort',
      address: '0.0.0.0',
      port: 30080,
      protocol: 'TCP',
      portName: '',
      affinityTimeoutSeconds: 0,
      backends: [
        { ip: '10.0.0.1', port: 8080, ready: true, serving: true, terminating: false },
        { ip: '10.0.1.1', port: 8080, ready: true, serving: true, terminating: false, ...(remote ? { remote } : {}) },
      ],
      externalLocal: false,
    });
    const slots = () =>
      [...maps.backends.entries()]
        .map(([k, v]) => ({ ...decodeSvcBackendKey(k), ...decodeSvcBackendValue(v) }))
        .sort((x, y) => x.slot - y.slot);
    syncer.setDesired(stateOf(new Map([[frontendKey(fe(true)), fe(true)]])));
    expect(syncer.resync().failures).toEqual([]);
    expect(slots().map(({ addr, remote }) => [addr, remote === true])).toEqual([
      ['10.0.0.1', false],
      ['10.0.1.1', true],
    ]);
    syncer.setDesired(stateOf(new Map([[frontendKey(fe(false)), fe(false)]])));
    expect(syncer.resync().failures).toEqual([]);
    expect(slots().map(({ addr, remote }) => [addr, remote === true])).toEqual([
      ['10.0.0.1', false],
      ['10.0.1.1', false],
    ]);
    expect(syncer.resync().repaired).toBe(0);
  });
});
