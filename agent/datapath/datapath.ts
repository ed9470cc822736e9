/**
 * The loaded datapath: load-or-adopt the pinned object under the pin root,
 * attach and detach its programs on pod interfaces, read its counters and
 * flow events. Map contents are written only by the Syncer.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadObject, type LoadedObject, type ReplacedMap } from '../../maps/object.js';
import { BpfMap } from '../../maps/bpf-map.js';
import { CtFlag, Direction, MapName, ProgramName, type MapKey } from '../../maps/abi.js';
import { programName, tcAttach, tcDetach, tcQuery, type TcTarget } from '../../maps/tc.js';
import {
  readCounters,
  readCtMisses,
  readLostEvents,
  readServiceCounters,
  type CounterRow,
  type ServiceCounters,
} from '../../maps/readers.js';
import { TickClock, runClockSample } from '../../maps/clock.js';
import { openRingBufferBatches, type RingBufferOptions, type RingBufferReader } from '../../maps/ringbuf.js';
import { decodeFlowEvents, type FlowEvent } from '../../maps/codecs/flow-event.js';
import { encodeConfig, type DatapathConfig } from '../../maps/codecs/config.js';
import type { SyncerMaps } from './syncer.js';
import {
  ct4KeyLayout,
  ctKeyLayout,
  ctValueLayout,
  decodeCtKey,
  encodeCt4Key,
  encodeCtKey,
} from '../../maps/codecs/conntrack.js';
import { decodeLbReverseKey } from '../../maps/codecs/service.js';
import { ENDPOINT_KEY_SIZE, ENDPOINT_V1_SIZE, upgradeEndpointV1 } from '../../maps/codecs/endpoint.js';

export const DEFAULT_PIN_ROOT = '/sys/fs/bpf/weir';

/** build/bpf/weir.o next to the package root (works from sources and from dist/). */
export function defaultObjectPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'build', 'bpf', 'weir.o');
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  return resolve('build/bpf/weir.o');
}

export interface DatapathOptions {
  /** Where maps and programs are pinned (default /sys/fs/bpf/weir). */
  pinRoot?: string;
  /** Compiled object (default build/bpf/weir.o). */
  objectPath?: string;
  /** Map sizes at load (map name -> max entries); a map already pinned keeps its size. */
  mapMax?: Record<string, number>;
}

/**
 * Endpoint records pinned by an older weir, in today's layout: the 16-byte record (before the
 * pod's addresses) keeps its id, identity, policy_rev and flags, so the syncer adopts ids and
 * revisions as on any restart, and gets no address, so the pod's packets are dropped as
 * INVALID_SOURCE until the syncer writes the record again. Any other layout: none carried (every
 * interface drops as NO_ENDPOINT until its record is written).
 */
function upgradeEndpoints(old: BpfMap): Array<[Buffer, Buffer]> {
  if (old.info.keySize !== ENDPOINT_KEY_SIZE || old.info.valueSize !== ENDPOINT_V1_SIZE) return [];
  return [...old.entries()].map(([k, v]): [Buffer, Buffer] => [k, upgradeEndpointV1(v)]);
}

/**
 * Conntrack tables pinned with other map flags (libbpf reuses a pinned map only when its flags
 * match, e.g. LRU lists shared by all CPUs instead of per-CPU ones) but the same key and value:
 * every connection is carried over as it is, so established connections stay established.
 */
function carryConnections(key: number, value: number): (old: BpfMap) => Array<[Buffer, Buffer]> {
  return (old) => (old.info.keySize === key && old.info.valueSize === value ? [...old.entries()] : []);
}

export class Datapath {
  private constructor(
    readonly pinRoot: string,
    private readonly obj: LoadedObject,
  ) {}

  /** Loads the programs; maps already pinned under the pin root are adopted with their contents. */
  static open(opts: DatapathOptions = {}): Datapath {
    const pinRoot = opts.pinRoot ?? DEFAULT_PIN_ROOT;
    if (!existsSync(dirname(pinRoot))) {
      throw new Error(`${dirname(pinRoot)} does not exist: mount bpffs with "mount -t bpf bpf /sys/fs/bpf"`);
    }
    const obj = loadObject(opts.objectPath ?? defaultObjectPath(), {
      pinRoot,
      ...(opts.mapMax ? { mapMax: opts.mapMax } : {}),
      upgrade: {
        [MapName.endpoints]: upgradeEndpoints,
        [MapName.conntrack]: carryConnections(ctKeyLayout.size, ctValueLayout.size),
        [MapName.conntrack4]: carryConnections(ct4KeyLayout.size, ctValueLayout.size),
      },
    });
    try {
      const dp = new Datapath(pinRoot, obj);
      dp.migratedConnections = dp.moveIpv4Connections();
      dp.markedServiceConnections = dp.markServiceConnections();
      return dp;
    } catch (err) {
      obj.close();
      throw err;
    }
  }

  /** IPv4 connections moved from weir_ct to weir_ct4 by this load (pins of an older weir), else 0. */
  migratedConnections = 0;

  /** Translated connections given WEIR_CT_F_SERVICE by this load (pins of an older weir), else 0. */
  markedServiceConnections = 0;

  /**
   * Pins from before conntrack entries said which connections a pod sent to a Service (the flag
   * `to_pod` asks before translating a reply back; that build's weir_lb_scratch had no reply key,
   * so this load replaced it): the connection of every reply translation in weir_lb_rev gets the
   * flag, so translated connections open across the upgrade keep their replies coming from the VIP.
   */
  private markServiceConnections(): number {
    if (!this.obj.replaced.some((r) => r.name === MapName.lbScratch) || !this.obj.adopted.includes(MapName.lbReverse))
      return 0;
    const [ct, ct4] = [this.map('conntrack'), this.map('conntrack4')];
    let marked = 0;
    for (const [k] of this.map('lbReverse').entries()) {
      const r = decodeLbReverseKey(k);
      const key = {
        srcAddr: r.client,
        dstAddr: r.backend,
        srcPort: r.clientPort,
        dstPort: r.backendPort,
        protocol: r.protocol,
        family: r.family,
        direction: Direction.EGRESS,
        ifindex: r.ifindex,
      };
      const [map, enc] = r.family === 4 ? [ct4, encodeCt4Key(key)] : [ct, encodeCtKey(key)];
      const v = map.lookup(enc);
      if (!v || v[ctValueLayout.offsets.flags]! & CtFlag.SERVICE) continue;
      v[ctValueLayout.offsets.flags] |= CtFlag.SERVICE;
      map.update(enc, v);
      marked++;
    }
    return marked;
  }

  /**
   * Pins from before IPv4 connections had their own map: weir_ct was adopted and weir_ct4 is
   * new. The IPv4 entries move over, so established connections (and their replies) keep
   * flowing across the upgrade instead of being judged again packet by packet.
   */
  private moveIpv4Connections(): number {
    const pinnedBefore = (name: string) =>
      this.obj.adopted.includes(name) || this.obj.replaced.some((r) => r.name === name);
    if (!pinnedBefore(MapName.conntrack) || pinnedBefore(MapName.conntrack4)) return 0;
    const ct = this.map('conntrack');
    const ct4 = this.map('conntrack4');
    const moved: Buffer[] = [];
    for (const [k, v] of ct.entries()) {
      const key = decodeCtKey(k);
      if (key.family !== 4) continue;
      ct4.update(encodeCt4Key(key), v);
      moved.push(k);
    }
    if (moved.length > 0) ct.deleteBatch(moved);
    return moved.length;
  }

  /**
   * Pinned maps of another layout (an older weir's) that this load replaced with new, empty
   * ones; endpoint records are carried over (see upgradeEndpoints). Programs still attached
   * keep the old maps until the syncer attaches this load's programs to each interface, after
   * writing its record: no interface is ever left without a program judging it.
   */
  get replacedMaps(): readonly ReplacedMap[] {
    return this.obj.replaced;
  }

  /** Maps that existed under the pin root before this load (a restart adopts them). */
  get adoptedMaps(): readonly string[] {
    return this.obj.adopted;
  }

  map(key: MapKey): BpfMap {
    return this.obj.map(MapName[key]);
  }

  /** Every program fd of the object by function name (from_pod, to_pod, noop). */
  get programs(): ReadonlyMap<string, number> {
    return this.obj.programs;
  }

  program(name: keyof typeof ProgramName): number {
    return this.obj.program(ProgramName[name]);
  }

  /** Enforces on a pod's host-side veth: from_pod on its tc ingress, to_pod on its tc egress. */
  attach(target: TcTarget): void {
    tcAttach(target, 'ingress', this.program('fromPod'));
    tcAttach(target, 'egress', this.program('toPod'));
  }

  detach(target: TcTarget): void {
    tcDetach(target, 'ingress');
    tcDetach(target, 'egress');
  }

  /**
   * NodePort on one of the node's external interfaces: from_node on its tc ingress translates
   * packets to a node address at a NodePort, to_node on its tc egress their replies. `detach`
   * removes them again.
   */
  attachNodePort(target: TcTarget): void {
    tcAttach(target, 'ingress', this.program('fromNode'));
    tcAttach(target, 'egress', this.program('toNode'));
  }

  /**
   * Which of weir's programs is on an interface's tc ingress, by name (`from_pod`, `from_node`):
   * this load's or an earlier one's (a previous agent's attachments outlive it); undefined: none.
   */
  programOn(target: TcTarget): string | undefined {
    const id = tcQuery(target, 'ingress');
    return id === undefined ? undefined : programName(id);
  }

  /** The maps the Syncer writes. */
  syncerMaps(): SyncerMaps {
    return {
      endpoints: this.map('endpoints'),
      endpointRev: this.map('endpointRev'),
      policy: this.map('policy'),
      policyRange: this.map('policyRange'),
      ipcache: this.map('ipcache'),
      ipcacheLpm: this.map('ipcacheLpm'),
      services: this.map('services'),
      backends: this.map('backends'),
    };
  }

  /** Datapath switches (host traffic to pods, flow events of allowed connections). */
  configure(c: DatapathConfig): void {
    const k = Buffer.alloc(4);
    this.map('config').update(k, encodeConfig(c));
  }

  counters(): CounterRow[] {
    return readCounters(this.map('counters'));
  }

  lostEvents(): bigint {
    return readLostEvents(this.map('lostEvents'));
  }

  /** Service translations and NO_SERVICE_BACKEND drops, summed over CPUs. */
  serviceCounters(): ServiceCounters {
    return readServiceCounters(this.map('lbCounters'));
  }

  /** TCP packets without SYN that found no conntrack entry, per direction (see readCtMisses). */
  conntrackMisses(): { ingress: bigint; egress: bigint } {
    return readCtMisses(this.map('ctMiss'));
  }

  /**
   * Streams decoded flow events, their times on CLOCK_MONOTONIC (the datapath stamps its tick
   * count: maps/clock.ts); close the reader when done. Each batch is decoded in place
   * (decodeFlowEvents).
   */
  onFlowEvents(cb: (events: FlowEvent[]) => void, opts?: RingBufferOptions): RingBufferReader {
    return this.onFlowBatches((data, ends, count, toMonoNs) => cb(decodeFlowEvents(data, ends, count, toMonoNs)), opts);
  }

  /**
   * The flow-event ring's batches undecoded (maps/ringbuf.ts openRingBufferBatches), with the
   * tick-count -> CLOCK_MONOTONIC conversion valid for that batch (none for an older object, which
   * stamped CLOCK_MONOTONIC_COARSE ns itself). What onFlowEvents decodes.
   */
  onFlowBatches(
    cb: (data: Buffer, ends: Buffer, count: number, toMonoNs: ((jiffies: bigint) => bigint) | undefined) => void,
    opts?: RingBufferOptions,
  ): RingBufferReader {
    const fd = this.obj.programs.get(ProgramName.clockSample);
    const clock = fd === undefined ? undefined : new TickClock(() => runClockSample(fd));
    clock?.refresh();
    const toMonoNs = clock && ((j: bigint) => clock.toMonoNs(j));
    return openRingBufferBatches(
      this.map('events').fd,
      (data, ends, count) => {
        clock?.refresh();
        cb(data, ends, count, toMonoNs);
      },
      opts,
    );
  }

  /** Releases fds; pins stay so enforcement continues and the next start adopts them. */
  close(): void {
    this.obj.close();
  }
}
