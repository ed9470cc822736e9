/**
 * Reconciler increments of the ipcache against real maps: a diff touches only the addresses it
 * names (one write for one address, whatever the size of the ipcache), the node's own addresses
 * stay host, and after any sequence of diffs a full resync has nothing left to write. Needs root.
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
  return { endpointsChanged: [], endpointsRemoved: [], entriesAdded: new Map(), entriesRemoved: new Map(), ipcacheUpserted: upserted, ipcacheRemoved: removed };
}

function stateOf(ipcache: Map<string, number>): DesiredState {
  return {
    endpoints: new Map([
      ['t/a', { key: 't/a', namespace: 't', name: 'a', ips: ['10.250.201.1'], identity: 300, ingressIsolated: true, egressIsolated: false, entries: [] }],
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
