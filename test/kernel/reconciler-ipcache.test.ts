/**
 * Reconciler increments of the ipcache against real maps: a diff touches only the addresses it
 * names (one write for one address, whatever the size of the ipcache), the node's own addresses
 * stay host, and after any sequence of diffs a full resync has nothing left to write. Needs root.
 *
 * @requires root
 */
import { rmSync } from 'node:fs';
import { Datapath } from '../../agent/datapath/datapath.js';
import { Reconciler } from '../../agent/datapath/reconciler.js';
import type { DesiredDiff, DesiredState, IpcacheEntry } from '../../agent/desired.js';
import { decodeIpcacheKey, decodeIpcacheValue } from '../../maps/codecs/ipcache.js';

const PIN_ROOT = `/sys/fs/bpf/wbn-rec-${process.pid}`;
const NODE_IP = '10.250.200.1';
const FAKE_IFINDEX = 0x7ffff000; // no interface is needed: only maps are written

let dp: Datapath;
let rec: Reconciler;

function diff(upserted: IpcacheEntry[], removed: string[]): DesiredDiff {
  return {
    endpointsChanged: [],
    endpointsRemoved: [],
    entriesAdded: new Map(),
    entriesRemoved: new Map(),
    ipcacheUpserted: upserted,
    ipcacheRemoved: removed,
  };
}

function stateOf(ipcache: Map<string, number>): DesiredState {
  return {
    endpoints: new Map([
      [
        't/a',
        {
          key: 't/a',
          namespace: 't',
          name: 'a',
          ips: ['10.250.201.1'],
          identity: 300,
          ingressIsolated: true,
          egressIsolated: false,
          entries: [],
        },
      ],
    ]),
    ipcache: new Map([...ipcache].map(([cidr, identity]) => [cidr, { cidr, identity }])),
  };
}

function exactIpcache(): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of dp.map('ipcache').entries()) out.set(decodeIpcacheKey(k), decodeIpcacheValue(v));
  return out;
}

beforeAll(() => {
  rmSync(PIN_ROOT, { recursive: true, force: true });
  dp = Datapath.open({ pinRoot: PIN_ROOT });
  rec = new Reconciler(dp.reconcilerMaps(), () => FAKE_IFINDEX);
  rec.setNodeAddresses([NODE_IP]);
});
afterAll(() => {
  dp?.close();
  rmSync(PIN_ROOT, { recursive: true, force: true });
});

describe('reconciler ipcache increments', () => {
  const want = new Map<string, number>();
  for (let i = 0; i < 5000; i++) want.set(`10.250.${i >> 8}.${i & 255}/32`, 1000 + i);

  it('a diff naming one new address writes exactly one entry, whatever the size of the ipcache', () => {
    expect(rec.applyFull(stateOf(want)).errors).toEqual([]);
    const st = rec.applyDiff(diff([{ cidr: '10.250.100.7/32', identity: 9001 }], []));
    want.set('10.250.100.7/32', 9001);
    expect(st.errors).toEqual([]);
    expect(st.writes).toBe(1);
    expect(exactIpcache().get('10.250.100.7/32')).toBe(9001);
  });

  it('identity changes, removals and prefixes arrive as diffs; a full resync then has nothing to write', () => {
    const st = rec.applyDiff(
      diff(
        [
          { cidr: '10.250.0.1/32', identity: 7777 },
          { cidr: '10.250.128.0/17', identity: 16_777_300 },
        ],
        ['10.250.0.2/32', '10.250.100.7/32'],
      ),
    );
    expect(st.errors).toEqual([]);
    want.set('10.250.0.1/32', 7777);
    want.set('10.250.128.0/17', 16_777_300);
    want.delete('10.250.0.2/32');
    want.delete('10.250.100.7/32');
    const ipc = exactIpcache();
    expect(ipc.get('10.250.0.1/32')).toBe(7777);
    expect(ipc.has('10.250.0.2/32')).toBe(false);
    expect(ipc.has('10.250.100.7/32')).toBe(false);
    expect(rec.applyFull(stateOf(want)).writes).toBe(0);
  });

  it("the node's own address stays host (1) even when a diff names it", () => {
    rec.applyDiff(diff([{ cidr: `${NODE_IP}/32`, identity: 4242 }], []));
    expect(exactIpcache().get(`${NODE_IP}/32`)).toBe(1);
    rec.applyDiff(diff([], [`${NODE_IP}/32`]));
    expect(exactIpcache().get(`${NODE_IP}/32`)).toBe(1);
  });
});

describe('re-judging after an address changes identity', () => {
  // 'r/names' allows TCP from identity 5000 (the address below), 'r/other' from anyone on port 80.
  const IF_NAMES = FAKE_IFINDEX + 1;
  const IF_OTHER = FAKE_IFINDEX + 2;
  const ADDR = '10.250.210.9/32';
  const ifindexOf = (key: string): number | undefined =>
    key === 'r/names' ? IF_NAMES : key === 'r/other' ? IF_OTHER : undefined;
  const ep = (name: string, remoteIdentity: number, port: number) => ({
    key: `r/${name}`,
    namespace: 'r',
    name,
    ips: [],
    identity: 400,
    ingressIsolated: true,
    egressIsolated: false,
    entries: [
      {
        direction: 'ingress' as const,
        remoteIdentity,
        protocol: 'TCP' as const,
        port,
        endPort: 0,
        derivedFrom: [{ policy: 'r/p', direction: 'ingress' as const, rule: 0 }],
      },
    ],
  });
  let r: Reconciler;
  const rev = (key: string): number => {
    const id = r.endpointId(key);
    if (id === undefined) throw new Error(`${key} has no endpoint id`);
    const b = Buffer.alloc(4);
    b.writeUInt32LE(id);
    return dp.map('endpointRev').lookup(b)!.readUInt32LE(0);
  };

  beforeAll(() => {
    r = new Reconciler(dp.reconcilerMaps(), ifindexOf);
    const state: DesiredState = {
      endpoints: new Map([
        ['r/names', ep('names', 5000, 0)],
        ['r/other', ep('other', 0, 80)],
      ]),
      ipcache: new Map([[ADDR, { cidr: ADDR, identity: 5000 }]]),
    };
    expect(r.applyFull(state).errors).toEqual([]);
  });

  it('an address moving between cluster identities re-judges only the endpoints whose rules name one of them', () => {
    const names = rev('r/names');
    const other = rev('r/other');
    expect(r.applyDiff(diff([{ cidr: ADDR, identity: 5001 }], [])).errors).toEqual([]);
    expect(rev('r/names')).not.toBe(names);
    expect(rev('r/other')).toBe(other);
    // moving on to an identity nobody names still re-judges 'r/names': it named the old one
    const names2 = rev('r/names');
    r.applyDiff(diff([{ cidr: ADDR, identity: 5000 }], []));
    r.applyDiff(diff([{ cidr: ADDR, identity: 5002 }], []));
    expect(rev('r/names')).not.toBe(names2);
    expect(rev('r/other')).toBe(other);
  });

  it('an address moving to a reserved identity, or a prefix changing, re-judges every endpoint', () => {
    const other = rev('r/other');
    r.applyDiff(diff([{ cidr: ADDR, identity: 2 }], []));
    expect(rev('r/other')).not.toBe(other);
    const other2 = rev('r/other');
    r.applyDiff(diff([{ cidr: '10.250.211.0/24', identity: 16_777_400 }], []));
    r.applyDiff(diff([{ cidr: '10.250.211.0/24', identity: 16_777_401 }], []));
    expect(rev('r/other')).not.toBe(other2);
  });
});

describe('entry diffs', () => {
  const IF = FAKE_IFINDEX + 3;
  const ref = [{ policy: 'e/p', direction: 'ingress' as const, rule: 0 }];
  const entry = (remoteIdentity: number, port: number, endPort: number) => ({
    direction: 'ingress' as const,
    remoteIdentity,
    protocol: 'TCP' as const,
    port,
    endPort,
    derivedFrom: ref,
  });
  const base = {
    key: 'e/a',
    namespace: 'e',
    name: 'a',
    ips: [],
    identity: 500,
    ingressIsolated: true,
    egressIsolated: false,
    entries: [entry(6000, 443, 0)],
  };
  const entriesDiff = (added: ReturnType<typeof entry>[], removed: ReturnType<typeof entry>[]): DesiredDiff => ({
    ...diff([], []),
    entriesAdded: new Map(added.length ? [['e/a', added]] : []),
    entriesRemoved: new Map(removed.length ? [['e/a', removed]] : []),
  });
  let r: Reconciler;
  const fresh = (): Reconciler => new Reconciler(dp.reconcilerMaps(), (k) => (k === 'e/a' ? IF : undefined));
  const desired = (entries: ReturnType<typeof entry>[]): DesiredState => ({
    endpoints: new Map([['e/a', { ...base, entries }]]),
    ipcache: new Map(),
  });

  it('write only what came or went; overlapping port ranges keep their shared keys; a resync then has nothing to write', () => {
    r = fresh();
    expect(r.applyFull(desired([entry(6000, 443, 0)])).errors).toEqual([]);
    const rangeKeys = () => dp.map('policyRange').keys();
    const countRanges = () => [...rangeKeys()].length;
    const before = countRanges();
    expect(r.applyDiff(entriesDiff([entry(6001, 80, 95), entry(6001, 80, 87)], [])).errors).toEqual([]);
    const both = countRanges();
    expect(both).toBeGreaterThan(before);
    r.applyDiff(entriesDiff([], [entry(6001, 80, 95)]));
    const one = countRanges();
    expect(one).toBeLessThan(both);
    expect(one).toBeGreaterThan(before);
    // the same entry again (a new derivedFrom) writes nothing
    expect(r.applyDiff(entriesDiff([entry(6001, 80, 87)], [])).writes).toBe(0);
    expect(fresh().applyFull(desired([entry(6000, 443, 0), entry(6001, 80, 87)])).writes).toBe(0);
  });

  it('the last entry of a kind going clears its kind bit in the endpoint record', () => {
    r = fresh();
    r.applyFull(desired([entry(6000, 443, 0), entry(6001, 80, 87)]));
    const st = r.applyDiff(entriesDiff([], [entry(6001, 80, 87)]));
    expect(st.errors).toEqual([]);
    expect(fresh().applyFull(desired([entry(6000, 443, 0)])).writes).toBe(0);
  });
});
