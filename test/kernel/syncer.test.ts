/**
 * The Syncer against real pinned maps: minimal writes, adoption after an
 * agent restart (same pins, new process state), stale entries removed, a full
 * map reported without widening anything, and established connections kept
 * across a restart. Needs root (CI runs it as root).
 *
 * @requires root
 */
import { KernelFixture, TC_ACT_OK, TC_ACT_SHOT, endpoint, entry, state } from './fixture.js';
import { Datapath } from '../../agent/datapath/datapath.js';
import { SyncDriver } from './sync-driver.js';
import { ipv4, tcp, TCP_SYN, TCP_ACK } from './packets.js';
import { Direction, Limits, MapName, Match, Protocol, Verdict, type MapKey } from '../../maps/abi.js';
import { decodeCt4Key, encodeCtKey } from '../../maps/codecs/conntrack.js';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { testRun } from '../../maps/test-run.js';
import { decodeEndpoint } from '../../maps/codecs/endpoint.js';
import { createMap, openPinnedMap } from '../../maps/bpf-map.js';
import { fn } from '../../maps/libbpf.js';
import { encodePolicyKey, encodePolicyValue } from '../../maps/codecs/policy.js';
import { WeirMetrics } from '../../agent/metrics/metrics.js';
import { datapathMapUsage } from '../../agent/metrics/map-usage.js';

const A = 'rc/a';
const B = 'rc/b';
const IPA = '10.210.5.1';
const IPB = '10.210.5.2';
const e80 = entry({ direction: 'ingress', remoteIdentity: 6002, protocol: 'TCP', port: 80, endPort: 80 });
const e81 = entry({ direction: 'ingress', remoteIdentity: 6002, protocol: 'TCP', port: 81, endPort: 90 });
const ipc: Array<[string, number]> = [
  [`${IPA}/32`, 6001],
  [`${IPB}/32`, 6002],
  ['10.210.128.0/17', 6100],
];
const full = () =>
  state([endpoint(A, [IPA], 6001, { ingressIsolated: true, entries: [e80, e81] }), endpoint(B, [IPB], 6002)], ipc);

let fx: KernelFixture;
beforeAll(() => {
  fx = KernelFixture.create('r', [A, B]);
});
afterAll(() => fx?.close());

const syn = (sport: number, dport: number) => ipv4(IPB, IPA, Protocol.TCP, tcp(sport, dport, TCP_SYN));
const ack = (sport: number, dport: number) => ipv4(IPB, IPA, Protocol.TCP, tcp(sport, dport, TCP_ACK));
const count = (key: MapKey) => [...fx.dp.map(key).keys()].length;

describe('syncer', () => {
  it('writes the desired state, then nothing when applied again', () => {
    const first = fx.rec.resyncTo(full());
    expect(first.errors).toEqual([]);
    // 2 endpoints (record + revision each) + 1 exact entry + range blocks for 81-90 (81, 82-83, 84-87, 88-89, 90)
    // + 2 exact + 1 prefix ipcache entries, each written twice (transit identity, then its own)
    expect(first.writes).toBe(2 * 2 /* endpoint record + fast-path revision */ + 1 + 5 + 3 * 2);
    expect(fx.rec.resyncTo(full()).writes).toBe(0);
    expect(fx.run('toPod', A, syn(1000, 85))).toBe(TC_ACT_OK);
  });

  it('a restarted agent adopts the pinned maps: same endpoint ids, established connections keep flowing, no writes', () => {
    expect(fx.run('toPod', A, syn(2000, 80))).toBe(TC_ACT_OK);
    const idBefore = fx.rec.endpointId(A);
    const dp2 = Datapath.open({ pinRoot: fx.pinRoot });
    try {
      expect([...dp2.adoptedMaps].sort()).toEqual(Object.values(MapName).sort());
      const rec2 = new SyncDriver(dp2.syncerMaps(), (k) => fx.ifindex.get(k));
      expect(rec2.resyncTo(full()).writes).toBe(0);
      expect(rec2.endpointId(A)).toBe(idBefore);
      // the new program instance sees the old conntrack entry
      expect(testRun(dp2.program('toPod'), ack(2000, 80), { ifindex: fx.ifindex.get(A) }).retval).toBe(TC_ACT_OK);
    } finally {
      dp2.close();
    }
  });

  it('resync removes what is no longer desired (entries, prefixes, endpoints) and denies again', () => {
    const rec2 = new SyncDriver(fx.dp.syncerMaps(), (k) => fx.ifindex.get(k));
    const st = rec2.resyncTo(
      state([endpoint(A, [IPA], 6001, { ingressIsolated: true, entries: [e80] })], ipc.slice(0, 2)),
    );
    expect(st.errors).toEqual([]);
    expect(count('policyRange')).toBe(0);
    expect(count('ipcacheLpm')).toBe(0);
    expect(count('policy')).toBe(1);
    expect(count('endpoints')).toBe(1);
    expect(fx.run('toPod', A, syn(3000, 85))).toBe(TC_ACT_SHOT);
    expect(fx.run('toPod', A, syn(3001, 80))).toBe(TC_ACT_OK);
  });

  it('a full endpoints map is reported, and what was there stays as it was', () => {
    const many = [endpoint(A, [IPA], 6001, { ingressIsolated: true, entries: [e80] })];
    const ifx = new Map<string, number>([[A, fx.ifindex.get(A) ?? 0]]);
    for (let i = 0; i < Limits.ENDPOINTS_MAX; i++) {
      many.push(endpoint(`rc/x${i}`, [], 7000 + i));
      ifx.set(`rc/x${i}`, 1_000_000 + i); // interfaces need not exist for map writes
    }
    const rec = new SyncDriver(fx.dp.syncerMaps(), (k) => ifx.get(k) ?? fx.ifindex.get(k));
    const st = rec.resyncTo(state(many, ipc.slice(0, 2)));
    expect(st.errors).toHaveLength(1);
    expect(st.errors[0]).toMatch(/weir_endpoints is full \(4096 entries\)/);
    const aValue = fx.dp.map('endpoints').lookup(Buffer.from(new Uint32Array([fx.ifindex.get(A) ?? 0]).buffer));
    expect(aValue && decodeEndpoint(aValue).identity).toBe(6001);
    expect(fx.run('toPod', A, syn(4000, 85))).toBe(TC_ACT_SHOT);
    // back to a sane state for later tests
    expect(rec.resyncTo(full()).errors).toEqual([]);
    expect(count('endpoints')).toBe(2);
  });
  it('pins of a weir without weir_ct4: a restart moves their IPv4 connections there, and they stay established', () => {
    expect(fx.run('toPod', A, syn(5000, 80))).toBe(TC_ACT_OK);
    // make the pins look like an older weir's: the connections in weir_ct, no weir_ct4 pinned
    const ct4 = fx.dp.map('conntrack4');
    const entries = [...ct4.entries()];
    expect(entries.length).toBeGreaterThan(0);
    for (const [k, v] of entries) {
      fx.dp.map('conntrack').update(encodeCtKey(decodeCt4Key(k)), v);
      ct4.delete(k);
    }
    rmSync(join(fx.pinRoot, MapName.conntrack4));
    const dp2 = Datapath.open({ pinRoot: fx.pinRoot });
    try {
      expect(dp2.migratedConnections).toBe(entries.length);
      expect([...dp2.map('conntrack').keys()]).toEqual([]);
      expect([...dp2.map('conntrack4').keys()]).toHaveLength(entries.length);
      const before = fx.counter(Direction.INGRESS, Verdict.FORWARDED, Match.ESTABLISHED);
      expect(testRun(dp2.program('toPod'), ack(5000, 80), { ifindex: fx.ifindex.get(A) }).retval).toBe(TC_ACT_OK);
      expect(fx.counter(Direction.INGRESS, Verdict.FORWARDED, Match.ESTABLISHED) - before).toBe(1n);
      // the next load adopts weir_ct4 and moves nothing
      const dp3 = Datapath.open({ pinRoot: fx.pinRoot });
      try {
        expect(dp3.migratedConnections).toBe(0);
      } finally {
        dp3.close();
      }
    } finally {
      dp2.close();
    }
  });

  it('pinned conntrack tables with other map flags (LRU lists shared by all CPUs): a restart replaces both, carrying every connection, which stays established', () => {
    expect(fx.run('toPod', A, syn(5100, 80))).toBe(TC_ACT_OK);
    const NO_COMMON_LRU = 2; // BPF_F_NO_COMMON_LRU, which the datapath's tables have
    expect(fx.dp.map('conntrack4').info.flags).toBe(NO_COMMON_LRU);
    // make the pins look like such tables: each re-created without that flag, its entries copied
    const counts: Record<string, number> = {};
    for (const name of ['conntrack', 'conntrack4'] as const) {
      const cur = fx.dp.map(name);
      const { type, keySize, valueSize, maxEntries } = cur.info;
      const old = createMap(type, MapName[name], keySize, valueSize, maxEntries, 0);
      const entries = [...cur.entries()];
      for (const [k, v] of entries) old.update(k, v);
      counts[MapName[name]] = entries.length;
      rmSync(join(fx.pinRoot, MapName[name]));
      expect(fn.obj_pin(old.fd, join(fx.pinRoot, MapName[name]))).toBe(0);
      expect(old.info.flags).toBe(0);
      old.close();
    }
    expect(counts[MapName.conntrack4]).toBeGreaterThan(0);
    const dp2 = Datapath.open({ pinRoot: fx.pinRoot });
    try {
      const replaced = dp2.replacedMaps.filter((r) => r.name === MapName.conntrack || r.name === MapName.conntrack4);
      expect(replaced.map((r) => [r.name, r.was.flags, r.now.flags, r.carried]).sort()).toEqual(
        [
          [MapName.conntrack, 0, NO_COMMON_LRU, counts[MapName.conntrack]],
          [MapName.conntrack4, 0, NO_COMMON_LRU, counts[MapName.conntrack4]],
        ].sort(),
      );
      expect(dp2.migratedConnections).toBe(0);
      expect(dp2.map('conntrack4').info.flags).toBe(NO_COMMON_LRU);
      expect([...dp2.map('conntrack4').keys()]).toHaveLength(counts[MapName.conntrack4]!);
      const before = fx.counter(Direction.INGRESS, Verdict.FORWARDED, Match.ESTABLISHED);
      expect(testRun(dp2.program('toPod'), ack(5100, 80), { ifindex: fx.ifindex.get(A) }).retval).toBe(TC_ACT_OK);
      expect(fx.counter(Direction.INGRESS, Verdict.FORWARDED, Match.ESTABLISHED) - before).toBe(1n);
      // the next load adopts both tables as they are
      const dp3 = Datapath.open({ pinRoot: fx.pinRoot });
      try {
        expect(dp3.replacedMaps).toEqual([]);
        expect(dp3.adoptedMaps).toEqual(expect.arrayContaining([MapName.conntrack, MapName.conntrack4]));
      } finally {
        dp3.close();
      }
    } finally {
      dp2.close();
    }
  });

  it('entries deleted and added by hand in the pinned maps are repaired by the next resync, and counted in a metric', async () => {
    expect(fx.rec.resyncTo(full()).errors).toEqual([]);
    const metrics = new WeirMetrics({
      datapath: {
        readCounters: () => fx.dp.counters(),
        mapUsage: () => datapathMapUsage(fx.dp),
        sync: () => fx.rec.syncer.status(),
      },
    });
    // as a scrape reads them (each scrape counts the maps afresh)
    const repaired = async () => Number(/^weir_resync_repaired_total (\d+)$/m.exec(await metrics.text())?.[1] ?? NaN);
    const before = await repaired();
    const policyEntries = async () =>
      Number(/^weir_map_entries\{map="weir_policy"\} (\d+)$/m.exec(await metrics.text())?.[1] ?? NaN);
    const id = fx.rec.endpointId(A) ?? 0;
    // someone edits the pinned map by hand (as bpftool map delete / update would)
    const pinned = openPinnedMap(join(fx.pinRoot, MapName.policy));
    try {
      const key = (port: number) =>
        encodePolicyKey({ endpointId: id, identity: 6002, direction: Direction.INGRESS, protocol: Protocol.TCP, port });
      expect(pinned.delete(key(80))).toBe(true);
      pinned.update(key(22), encodePolicyValue());
      pinned.update(key(23), encodePolicyValue());
    } finally {
      pinned.close();
    }
    expect(fx.run('toPod', A, syn(6000, 80))).toBe(TC_ACT_SHOT);
    expect(fx.run('toPod', A, syn(6001, 22))).toBe(TC_ACT_OK);
    expect(await policyEntries()).toBe(2); // 1 written by the agent, 1 deleted and 2 added by hand: counted from the kernel map, not from the agent's books
    const st = fx.rec.syncer.resync();
    expect(st.repaired).toBe(3);
    expect(await policyEntries()).toBe(1);
    expect(fx.run('toPod', A, syn(6002, 80))).toBe(TC_ACT_OK);
    expect(fx.run('toPod', A, syn(6003, 22))).toBe(TC_ACT_SHOT);
    expect((await repaired()) - before).toBe(3);
    expect(fx.rec.syncer.resync().repaired).toBe(0);
  });
});
