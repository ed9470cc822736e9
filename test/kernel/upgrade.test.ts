/**
 * Upgrade of pins left by an older weir: its endpoint records are 16 bytes (before they carried
 * the pod's addresses), today's 36, so the pinned map cannot be adopted as it is. The new load
 * replaces it with a map of today's layout, carries every record over without addresses (so the
 * pod's packets are dropped as INVALID_SOURCE, never passed, until the syncer writes the record
 * again) and the syncer keeps each endpoint's id. A map of the old shape is pinned by hand and a
 * pod's packets are run through the new programs (BPF_PROG_TEST_RUN, real kernel). Pins from
 * before conntrack entries marked the connections a pod sent to a Service: the connections
 * weir_lb_rev holds a reply translation for are marked at load, so their replies still come from
 * the VIP. Needs root.
 *
 * @requires root
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { Datapath } from '../../agent/datapath/datapath.js';
import { SyncDriver } from './sync-driver.js';
import { TC_ACT_OK, TC_ACT_SHOT, endpoint, state } from './fixture.js';
import { ipv4, tcp, udp, TCP_ACK, TCP_SYN } from './packets.js';
import { createMap, MapType } from '../../maps/bpf-map.js';
import { fn } from '../../maps/libbpf.js';
import { counterIndex, CtFlag, Direction, DropReason, MapName, Protocol, Verdict } from '../../maps/abi.js';
import { ctValueLayout, encodeCt4Key } from '../../maps/codecs/conntrack.js';
import { readAddr } from '../../maps/codecs/addr.js';
import { frontendKey, type ServiceFrontend } from '../../agent/desired.js';
import { decodeEndpoint, encodeEndpointKey } from '../../maps/codecs/endpoint.js';
import { testRun } from '../../maps/test-run.js';

const LINK = `wdpu${process.pid % 100_000}0`;
const PIN_ROOT = `/sys/fs/bpf/wdp-u-${process.pid}`;
const POD = '10.215.0.1';
const PEER = '10.215.0.2';

let dp: Datapath | undefined;
let ifindex = 0;
beforeAll(() => {
  try {
    execFileSync('ip', ['link', 'del', LINK], { stdio: 'ignore' });
  } catch {
    /* not left over */
  }
  execFileSync('ip', ['link', 'add', LINK, 'type', 'veth', 'peer', 'name', `${LINK}p`]);
  ifindex = Number(readFileSync(`/sys/class/net/${LINK}/ifindex`, 'utf8').trim());
});
afterAll(() => {
  dp?.close();
  rmSync(PIN_ROOT, { recursive: true, force: true });
  try {
    execFileSync('ip', ['link', 'del', LINK], { stdio: 'ignore' });
  } catch {
    /* gone */
  }
});

const dropped = (d: Datapath, reason: number): bigint =>
  d
    .counters()
    .find(
      (r) => counterIndex(r.direction, r.verdict, r.reason) === counterIndex(Direction.EGRESS, Verdict.DROPPED, reason),
    )?.packets ?? 0n;

describe('pins of an older weir', () => {
  it('a 16-byte endpoint record map is replaced, its records carried over without addresses (fail closed), then rewritten', () => {
    // the older weir's map: endpoint_id 7, identity 9001, policy_rev 5, flags 0
    mkdirSync(PIN_ROOT, { recursive: true });
    const old = createMap(MapType.HASH, MapName.endpoints, 4, 16, 4096);
    const v1 = Buffer.alloc(16);
    v1.writeUInt32LE(7, 0);
    v1.writeUInt32LE(9001, 4);
    v1.writeUInt32LE(5, 8);
    old.update(encodeEndpointKey(ifindex), v1);
    expect(fn.obj_pin(old.fd, `${PIN_ROOT}/${MapName.endpoints}`)).toBe(0);
    old.close();

    dp = Datapath.open({ pinRoot: PIN_ROOT });
    expect(dp.replacedMaps).toEqual([
      {
        name: MapName.endpoints,
        was: { type: MapType.HASH, keySize: 4, valueSize: 16, flags: 0 },
        now: { type: MapType.HASH, keySize: 4, valueSize: 36, flags: 0 },
        carried: 1,
      },
    ]);
    const rec = () => decodeEndpoint(dp!.map('endpoints').lookup(encodeEndpointKey(ifindex))!);
    expect(rec()).toEqual({ endpointId: 7, identity: 9001, policyRev: 5, flags: 0, ipv4: '', ipv6: '' });

    // before the syncer writes the record again: the pod's packets are dropped, never passed
    const out = ipv4(POD, PEER, Protocol.UDP, udp(5000, 53));
    const fromPod = dp.program('fromPod');
    const before = dropped(dp, DropReason.INVALID_SOURCE);
    expect(testRun(fromPod, out, { ifindex }).retval).toBe(TC_ACT_SHOT);
    expect(dropped(dp, DropReason.INVALID_SOURCE) - before).toBe(1n);

    // the syncer adopts the carried record (same endpoint id) and writes the pod's addresses
    const sync = new SyncDriver(dp.syncerMaps(), (k) => (k === 'up/a' ? ifindex : undefined));
    const st = sync.resyncTo(
      state(
        [endpoint('up/a', [POD], 9001)],
        [
          [`${POD}/32`, 9001],
          [`${PEER}/32`, 9002],
        ],
      ),
    );
    expect(st.errors).toEqual([]);
    expect(rec()).toMatchObject({ endpointId: 7, identity: 9001, ipv4: POD });
    expect(testRun(fromPod, out, { ifindex }).retval).toBe(TC_ACT_OK);

    // a second start adopts today's map as it is
    dp.close();
    dp = Datapath.open({ pinRoot: PIN_ROOT });
    expect(dp.replacedMaps).toEqual([]);
    expect(dp.adoptedMaps).toContain(MapName.endpoints);
    expect(rec()).toMatchObject({ endpointId: 7, ipv4: POD });
  });
});

describe('pins of a weir whose conntrack entries did not mark translated connections', () => {
  const ROOT = `${PIN_ROOT}-svc`;
  const VIP = '10.96.215.1';
  afterAll(() => rmSync(ROOT, { recursive: true, force: true }));

  it('a connection translated before the upgrade keeps its replies coming from the VIP after it', () => {
    let d = Datapath.open({ pinRoot: ROOT });
    const frontend: ServiceFrontend = {
      service: 'up/web',
      scope: 'clusterIP',
      address: VIP,
      port: 80,
      protocol: 'TCP',
      portName: '',
      affinityTimeoutSeconds: 0,
      externalLocal: false,
      backends: [{ ip: PEER, port: 8080, ready: true, serving: true, terminating: false }],
    };
    const desired = {
      ...state(
        [endpoint('up/a', [POD], 9001)],
        [
          [`${POD}/32`, 9001],
          [`${PEER}/32`, 9002],
        ],
      ),
      services: new Map([[frontendKey(frontend), frontend]]),
    };
    const sync = new SyncDriver(d.syncerMaps(), (k) => (k === 'up/a' ? ifindex : undefined));
    expect(sync.resyncTo(desired).errors).toEqual([]);
    const syn = testRun(d.program('fromPod'), ipv4(POD, VIP, Protocol.TCP, tcp(41000, 80, TCP_SYN)), { ifindex });
    expect(syn.retval).toBe(TC_ACT_OK);
    const reply = ipv4(PEER, POD, Protocol.TCP, tcp(8080, 41000, TCP_SYN | TCP_ACK));
    const source = (x: Datapath) => readAddr(testRun(x.program('toPod'), reply, { ifindex }).dataOut, 26, 4);
    expect(source(d)).toBe(VIP);

    // what the older weir wrote: the same connection without the flag
    const ct4 = d.map('conntrack4');
    const key = encodeCt4Key({
      srcAddr: POD,
      dstAddr: PEER,
      srcPort: 41000,
      dstPort: 8080,
      protocol: Protocol.TCP,
      family: 4,
      direction: Direction.EGRESS,
      ifindex,
    });
    const clearFlag = (): void => {
      const v = ct4.lookup(key)!;
      v[ctValueLayout.offsets.flags] &= ~CtFlag.SERVICE;
      ct4.update(key, v);
    };
    clearFlag();
    // without the upgrade step the reply would keep the backend's address (and the client's socket refuse it)
    expect(source(d)).toBe(PEER);
    clearFlag();

    // the older weir's scratch map (no reply key in it): this load replaces it and marks the connection
    const scratch = d.map('lbScratch');
    const old = createMap(MapType.PERCPU_ARRAY, MapName.lbScratch, 4, scratch.info.valueSize - 48, 1);
    d.close();
    rmSync(`${ROOT}/${MapName.lbScratch}`);
    expect(fn.obj_pin(old.fd, `${ROOT}/${MapName.lbScratch}`)).toBe(0);
    old.close();
    d = Datapath.open({ pinRoot: ROOT });
    try {
      expect(d.replacedMaps.map((r) => r.name)).toEqual([MapName.lbScratch]);
      expect(d.markedServiceConnections).toBe(1);
      expect(source(d)).toBe(VIP);
    } finally {
      d.close();
    }
  });
});
