/**
 * Two ways the former reconciler opened the datapath, judged by the real programs
 * (BPF_PROG_TEST_RUN) on real maps. Needs root.
 *
 * - A full weir_ipc_lpm must not disable an ipBlock's except: the except's prefix could not be
 *   written, so nothing of that policy may be, and the endpoint keeps its previous state.
 * - A restarted agent whose identity numbers came out the other way round (two label sets that
 *   collide in the hash get their numbers in arrival order) must never let an address resolve
 *   to the identity whose entries were meant for the other pod: checked after every single map
 *   write of the restart's resync.
 *
 * @requires root
 */
import { KernelFixture, TC_ACT_OK, TC_ACT_SHOT, endpoint, entry, state } from './fixture.js';
import { SyncDriver } from './sync-driver.js';
import { ipv4, tcp, TCP_SYN } from './packets.js';
import { Identity, Protocol } from '../../maps/abi.js';
import type { KernelMap } from '../../maps/kernel-map.js';
import type { SyncerMaps } from '../../agent/datapath/syncer.js';

const A = 'fc/a';
const B = 'fc/b';
const C = 'fc/c';
const IPA = '10.211.0.1';
const IPB = '10.211.0.2';
const IPC = '10.211.0.3';
const LPM_MAX = 4;
const EXCEPTED = '198.18.0.1';
const ELSEWHERE = '203.0.113.9';

let fx: KernelFixture;
beforeAll(() => {
  fx = KernelFixture.create('f', [A, B, C], { weir_ipc_lpm: LPM_MAX });
});
afterAll(() => fx?.close());

const egress = (dst: string, sport: number, port = 80) => ipv4(IPA, dst, Protocol.TCP, tcp(sport, port, TCP_SYN));
const ingressTo = (src: string, dst: string, sport: number) => ipv4(src, dst, Protocol.TCP, tcp(sport, 80, TCP_SYN));

describe('a full weir_ipc_lpm never disables an except', () => {
  // four prefixes fill the map: the world of each family and two pod ranges
  const base: Array<[string, number]> = [
    ['0.0.0.0/0', Identity.WORLD_IPV4],
    ['::/0', Identity.WORLD_IPV6],
    ['10.211.0.0/16', Identity.UNMANAGED],
    ['fd00:211::/64', Identity.UNMANAGED],
    [`${IPA}/32`, 7001],
  ];
  const denyAll = endpoint(A, [IPA], 7001, { egressIsolated: true });
  const withExcept = endpoint(A, [IPA], 7001, {
    egressIsolated: true,
    entries: [entry({ direction: 'egress', remoteIdentity: Identity.WORLD_IPV4 })],
  });
  const cidrIdentity = (1 << 24) + 300;

  it('the policy that needs the except is refused whole; with room it is enforced, except and all', () => {
    expect(fx.rec.resyncTo(state([denyAll], base)).errors).toEqual([]);
    expect(fx.run('fromPod', A, egress(ELSEWHERE, 1000))).toBe(TC_ACT_SHOT);
    // 0.0.0.0/0 except 198.18.0.0/15: the except needs a fifth prefix
    const st = fx.rec.syncDiff({
      endpointsChanged: [withExcept],
      endpointsRemoved: [],
      entriesAdded: new Map(),
      entriesRemoved: new Map(),
      ipcacheUpserted: [{ cidr: '198.18.0.0/15', identity: cidrIdentity }],
      ipcacheRemoved: [],
    });
    expect(st.errors.join('\n')).toMatch(/ipcache 198\.18\.0\.0\/15: BPF map weir_ipc_lpm is full/);
    expect(st.errors.join('\n')).toMatch(/endpoint fc\/a: waiting for ipcache 198\.18\.0\.0\/15/);
    // the excepted range is not reached, and nothing of the new policy is in force
    expect(fx.run('fromPod', A, egress(EXCEPTED, 1001))).toBe(TC_ACT_SHOT);
    expect(fx.run('fromPod', A, egress(ELSEWHERE, 1002))).toBe(TC_ACT_SHOT);
    // room is made (a pod range goes)
    const room = fx.rec.syncDiff({
      endpointsChanged: [],
      endpointsRemoved: [],
      entriesAdded: new Map(),
      entriesRemoved: new Map(),
      ipcacheUpserted: [],
      ipcacheRemoved: ['fd00:211::/64'],
    });
    // the removal frees its slot at the end of that round; the queue's retry (a timer in the
    // agent, run by hand here) then writes the prefix, then the entries
    expect(room.errors.every((e) => /198\.18\.0\.0\/15/.test(e))).toBe(true);
    expect(fx.run('fromPod', A, egress(EXCEPTED, 1005))).toBe(TC_ACT_SHOT);
    expect(fx.rec.syncer.sync({ force: true }).failures).toEqual([]);
    expect(fx.run('fromPod', A, egress(EXCEPTED, 1003))).toBe(TC_ACT_SHOT);
    expect(fx.run('fromPod', A, egress(ELSEWHERE, 1004))).toBe(TC_ACT_OK);
  });
});

/** A KernelMap that runs a check after every write it passes to the real map. */
function checked(m: KernelMap, after: (what: string) => void): KernelMap {
  return {
    name: m.name,
    maxEntries: m.maxEntries,
    lookup: (k) => m.lookup(k),
    update: (k, v) => {
      m.update(k, v);
      after(`update ${m.name}`);
    },
    delete: (k) => {
      const r = m.delete(k);
      after(`delete ${m.name}`);
      return r;
    },
    updateBatch: (es) => {
      for (const [k, v] of es) {
        m.update(k, v);
        after(`update ${m.name}`);
      }
    },
    deleteBatch: (ks) => {
      let n = 0;
      for (const k of ks) {
        if (m.delete(k)) n++;
        after(`delete ${m.name}`);
      }
      return n;
    },
    entries: () => m.entries(),
  };
}

describe('a restart never hands one pod the access meant for another', () => {
  it('identities that came out the other way round: after every write of the resync, C reaches A only as A allows', () => {
    // A admits identity 8001 only. Before the restart B has 8001 and C has 8002.
    const aState = endpoint(A, [IPA], 7001, {
      ingressIsolated: true,
      entries: [entry({ direction: 'ingress', remoteIdentity: 8001, protocol: 'TCP', port: 80, endPort: 80 })],
    });
    const before = state(
      [aState, endpoint(B, [IPB], 8001), endpoint(C, [IPC], 8002)],
      [
        [`${IPA}/32`, 7001],
        [`${IPB}/32`, 8001],
        [`${IPC}/32`, 8002],
      ],
    );
    expect(fx.rec.resyncTo(before).errors).toEqual([]);
    expect(fx.run('toPod', A, ingressTo(IPB, IPA, 2000))).toBe(TC_ACT_OK);
    expect(fx.run('toPod', A, ingressTo(IPC, IPA, 2001))).toBe(TC_ACT_SHOT);
    // After the restart the numbers are swapped: B's label set got 8002, C's got 8001, so A's
    // policy (admit B's label set) now names 8002.
    const after = state(
      [
        endpoint(A, [IPA], 7001, {
          ingressIsolated: true,
          entries: [entry({ direction: 'ingress', remoteIdentity: 8002, protocol: 'TCP', port: 80, endPort: 80 })],
        }),
        endpoint(B, [IPB], 8002),
        endpoint(C, [IPC], 8001),
      ],
      [
        [`${IPA}/32`, 7001],
        [`${IPB}/32`, 8002],
        [`${IPC}/32`, 8001],
      ],
    );
    let port = 3000;
    let writes = 0;
    const check = (what: string) => {
      writes++;
      // C's label set is never admitted by A, before, during or after
      expect({ what, verdict: fx.run('toPod', A, ingressTo(IPC, IPA, port++)) }).toEqual({
        what,
        verdict: TC_ACT_SHOT,
      });
    };
    const real = fx.dp.syncerMaps();
    const maps = Object.fromEntries(
      Object.entries(real).map(([k, m]) => [k, checked(m, check)]),
    ) as unknown as SyncerMaps;
    const restarted = new SyncDriver(maps, (k) => fx.ifindex.get(k));
    expect(restarted.resyncTo(after).errors).toEqual([]);
    expect(writes).toBeGreaterThan(4);
    expect(fx.run('toPod', A, ingressTo(IPB, IPA, port++))).toBe(TC_ACT_OK);
    expect(fx.run('toPod', A, ingressTo(IPC, IPA, port++))).toBe(TC_ACT_SHOT);
  });
});
