/**
 * Kernel test fixture: the real object loaded with its maps pinned under a
 * per-test root (/sys/fs/bpf/wdp-...), dummy interfaces standing in for pod
 * veths (BPF_PROG_TEST_RUN needs an existing ifindex), the Syncer writing
 * maps, and helpers for verdicts, events and counters. Needs root.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { Datapath } from '../../agent/datapath/datapath.js';
import { SyncDriver } from './sync-driver.js';
import type { DesiredState, EndpointState, PolicyEntry } from '../../agent/desired.js';
import { testRun } from '../../maps/test-run.js';
import { isDeepStrictEqual } from 'node:util';
import { decodeFlowEvent, decodeFlowEvents, type FlowEvent } from '../../maps/codecs/flow-event.js';
import { splitBatch, type RingBufferReader } from '../../maps/ringbuf.js';
import { counterIndex, DROP_MAX } from '../../maps/abi.js';

export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });

export class KernelFixture {
  readonly dp: Datapath;
  readonly rec: SyncDriver;
  readonly ifindex = new Map<string, number>();
  readonly events: FlowEvent[] = [];
  /** Batches whose in-place decoding differed from the per-record decoder's (close() fails on any). */
  readonly decodeMismatches: Array<{ inPlace: FlowEvent[]; perRecord: FlowEvent[] }> = [];
  /** Records held to both decoders. */
  decodedRecords = 0;
  private reader: RingBufferReader;

  constructor(
    readonly tag: string,
    readonly pinRoot: string,
    readonly links: string[],
    endpointKeys: string[],
    mapMax?: Record<string, number>,
  ) {
    try {
      links.forEach((l, i) => {
        ip('link', 'add', l, 'type', 'veth', 'peer', 'name', `${l}p`);
        this.ifindex.set(endpointKeys[i], Number(readFileSync(`/sys/class/net/${l}/ifindex`, 'utf8').trim()));
      });
      this.dp = Datapath.open({ pinRoot, ...(mapMax ? { mapMax } : {}) });
    } catch (err) {
      // a datapath that does not load (a verifier error) leaves no interface or pin behind
      rmSync(pinRoot, { recursive: true, force: true });
      for (const l of links) {
        try {
          ip('link', 'del', l);
        } catch {
          /* not made */
        }
      }
      throw err;
    }
    this.rec = new SyncDriver(this.dp.syncerMaps(), (k) => this.ifindex.get(k));
    // decoded as onFlowEvents decodes (in place: offsets, one time per tick), and every real
    // record held to the per-record decoder (decodeFlowEvent) on its own copy
    this.reader = this.dp.onFlowBatches(
      (data, ends, count, toMonoNs) => {
        const evs = decodeFlowEvents(data, ends, count, toMonoNs);
        const perRecord = splitBatch(data, ends, count).map((b) => decodeFlowEvent(Buffer.from(b), toMonoNs));
        if (!isDeepStrictEqual(evs, perRecord)) this.decodeMismatches.push({ inPlace: evs, perRecord });
        this.decodedRecords += count;
        this.events.push(...evs);
      },
      { pollIntervalMs: 1 },
    );
  }

  /** Creates the fixture; `tag` keeps names unique per test file (<= 4 chars). */
  static create(tag: string, endpointKeys: string[], mapMax?: Record<string, number>): KernelFixture {
    // the pid keeps runs of the same file from two checkouts at once apart (names <= 15 chars with the peer's "p")
    const links = endpointKeys.map((_, i) => `wdp${tag}${process.pid % 100_000}${i}`);
    for (const l of links) {
      try {
        ip('link', 'del', l);
      } catch {
        /* not left over */
      }
    }
    return new KernelFixture(tag, `/sys/fs/bpf/wdp-${tag}-${process.pid}`, links, endpointKeys, mapMax);
  }

  run(prog: 'fromPod' | 'toPod', endpointKey: string, packet: Buffer): number {
    const ifindex = this.ifindex.get(endpointKey);
    if (ifindex === undefined) throw new Error(`no interface for ${endpointKey}`);
    return testRun(this.dp.program(prog), packet, { ifindex }).retval;
  }

  /** Waits until the ring buffer reader has delivered what is pending, then returns and clears it. */
  async takeEvents(): Promise<FlowEvent[]> {
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 2));
    return this.events.splice(0);
  }

  /** Packets counted at (direction, verdict, reason), summed over CPUs. */
  counter(direction: number, verdict: number, reason: number): bigint {
    const idx = counterIndex(direction, verdict, reason % DROP_MAX);
    const row = this.dp.counters().find((r) => counterIndex(r.direction, r.verdict, r.reason) === idx);
    return row?.packets ?? 0n;
  }

  close(): void {
    this.reader.close();
    this.dp.close();
    rmSync(this.pinRoot, { recursive: true, force: true });
    for (const l of this.links) {
      try {
        ip('link', 'del', l);
      } catch {
        /* already gone */
      }
    }
    if (this.decodeMismatches.length > 0) {
      const m = this.decodeMismatches[0]!;
      throw new Error(
        `${this.decodeMismatches.length} ring-buffer batches decoded in place differ from the per-record decoder, e.g. ${JSON.stringify(m.inPlace, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))} vs ${JSON.stringify(m.perRecord, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))}`,
      );
    }
  }
}

export function entry(p: Partial<PolicyEntry> & Pick<PolicyEntry, 'direction'>): PolicyEntry {
  return {
    remoteIdentity: 0,
    protocol: 'ANY',
    port: 0,
    endPort: 0,
    derivedFrom: [{ policy: 'test/p', direction: p.direction, rule: 0 }],
    ...p,
  } as PolicyEntry;
}

export function endpoint(key: string, ips: string[], identity: number, o: Partial<EndpointState> = {}): EndpointState {
  const [namespace, name] = key.split('/');
  return { key, namespace, name, ips, identity, ingressIsolated: false, egressIsolated: false, entries: [], ...o };
}

export function state(endpoints: EndpointState[], ipcache: Array<[string, number]>): DesiredState {
  return {
    endpoints: new Map(endpoints.map((e) => [e.key, e])),
    ipcache: new Map(ipcache.map(([cidr, identity]) => [cidr, { cidr, identity }])),
  };
}
