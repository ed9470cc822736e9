/**
 * Read-only view of a pinned datapath (what `weir datapath show` prints):
 * endpoints with their entries, counters, lost events and conntrack, decoded
 * from the maps under a pin root. Opens pins; loads nothing, writes nothing.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openPinnedMap, type BpfMap } from '../../maps/bpf-map.js';
import {
  MapName,
  EndpointFlag,
  Direction,
  DropReason,
  Verdict,
  matchName,
  protocolName,
  CtFlag,
  type MapKey,
} from '../../maps/abi.js';
import { decodeEndpoint, decodeEndpointKey } from '../../maps/codecs/endpoint.js';
import { decodePolicyKey, decodePolicyRangeKey } from '../../maps/codecs/policy.js';
import { decodeCtKey, decodeCt4Key, decodeCtValue } from '../../maps/codecs/conntrack.js';
import { readCounters, readCtMisses, readLostEvents, type CounterRow } from '../../maps/readers.js';

export interface EndpointView {
  ifindex: number;
  endpointId: number;
  identity: number;
  policyRev: number;
  ingressIsolated: boolean;
  egressIsolated: boolean;
  /** The pod's addresses: its only valid sources ('' when none of that family). */
  ipv4: string;
  ipv6: string;
  /** e.g. "ingress identity=300 TCP/80", "egress any ICMP/*", "ingress any TCP/8000-8100 (...)" */
  entries: string[];
}

export interface ConnectionView {
  direction: 'ingress' | 'egress';
  ifindex: number;
  endpointId: number;
  protocol: string;
  src: string;
  dst: string;
  remoteIdentity: number;
  match: string;
  state: string;
}

export interface DatapathView {
  pinRoot: string;
  mapEntries: Record<string, number>;
  endpoints: EndpointView[];
  counters: CounterRow[];
  lostEvents: bigint;
  connections: ConnectionView[];
  conntrack: ConntrackFill;
}

/**
 * How full conntrack is, what it refused and what it lost. LRU evictions are invisible to BPF:
 * what an eviction looks like from the datapath is counted instead (`midstreamMisses`: TCP
 * packets without SYN, of a known endpoint, that found no entry in either direction — also
 * connections older than the datapath and stray segments). Refusals: new connections over their
 * endpoint's budget (CT_BUDGET) and inserts the kernel failed (CT_FULL), both directions.
 */
export interface ConntrackFill {
  ipv4: { entries: number; capacity: number };
  ipv6: { entries: number; capacity: number };
  refusedOverBudget: bigint;
  refusedInsertFailed: bigint;
  midstreamMisses: { ingress: bigint; egress: bigint };
}

function openAll(pinRoot: string): Map<MapKey, BpfMap> {
  if (!existsSync(join(pinRoot, MapName.endpoints))) {
    throw new Error(
      `no weir datapath is pinned under ${pinRoot}: is the agent (or \`weir lab up\`) running with this --pin-root?`,
    );
  }
  const maps = new Map<MapKey, BpfMap>();
  for (const [key, name] of Object.entries(MapName) as Array<[MapKey, string]>) {
    const p = join(pinRoot, name);
    if (existsSync(p)) maps.set(key, openPinnedMap(p));
  }
  return maps;
}

const dirName = (d: number): 'ingress' | 'egress' => (d === Direction.INGRESS ? 'ingress' : 'egress');
const proto = (p: number): string => (p === 0 ? '*' : protocolName(p));

export function inspectDatapath(pinRoot: string, opts: { connections?: number } = {}): DatapathView {
  const maps = openAll(pinRoot);
  try {
    const get = (k: MapKey): BpfMap => {
      const m = maps.get(k);
      if (!m)
        throw new Error(
          `map ${MapName[k]} is missing under ${pinRoot}: the pins come from another weir version; restart the agent`,
        );
      return m;
    };
    const mapEntries: Record<string, number> = {};
    for (const k of [
      'endpoints',
      'ipcache',
      'ipcacheLpm',
      'policy',
      'policyRange',
      'conntrack',
      'conntrack4',
      'frag',
    ] as MapKey[]) {
      mapEntries[MapName[k]] = [...get(k).keys()].length;
    }
    const byId = new Map<number, EndpointView>();
    for (const [k, v] of get('endpoints').entries()) {
      const e = decodeEndpoint(v);
      byId.set(e.endpointId, {
        ifindex: decodeEndpointKey(k),
        endpointId: e.endpointId,
        identity: e.identity,
        policyRev: e.policyRev,
        ingressIsolated: (e.flags & EndpointFlag.INGRESS_ISOLATED) !== 0,
        egressIsolated: (e.flags & EndpointFlag.EGRESS_ISOLATED) !== 0,
        ipv4: e.ipv4,
        ipv6: e.ipv6,
        entries: [],
      });
    }
    for (const k of get('policy').keys()) {
      const p = decodePolicyKey(k);
      const who = p.identity === 0 ? 'any' : `identity=${p.identity}`;
      byId
        .get(p.endpointId)
        ?.entries.push(`${dirName(p.direction)} ${who} ${proto(p.protocol)}/${p.port === 0 ? '*' : p.port}`);
    }
    const ranges = new Map<string, { lo: number; hi: number; blocks: number }>();
    for (const k of get('policyRange').keys()) {
      const r = decodePolicyRangeKey(k);
      const id = `${r.endpointId}|${dirName(r.direction)} ${r.identity === 0 ? 'any' : `identity=${r.identity}`} ${proto(r.protocol)}`;
      const hi = r.port + 2 ** (16 - r.portBits) - 1;
      const cur = ranges.get(id);
      ranges.set(
        id,
        cur
          ? { lo: Math.min(cur.lo, r.port), hi: Math.max(cur.hi, hi), blocks: cur.blocks + 1 }
          : { lo: r.port, hi, blocks: 1 },
      );
    }
    for (const [id, r] of ranges) {
      const [ep, text] = id.split('|');
      byId
        .get(Number(ep))
        ?.entries.push(`${text}/${r.lo}-${r.hi} (ports covered by ${r.blocks} prefix block${r.blocks > 1 ? 's' : ''})`);
    }
    for (const e of byId.values()) e.entries.sort();
    const connections: ConnectionView[] = [];
    const limit = opts.connections ?? 0;
    if (limit > 0) {
      // IPv4 connections first (weir_ct4), then IPv6 (weir_ct); read lazily up to the limit
      const all = function* () {
        for (const [k, v] of get('conntrack4').entries()) yield [decodeCt4Key(k), v] as const;
        for (const [k, v] of get('conntrack').entries()) yield [decodeCtKey(k), v] as const;
      };
      for (const [key, v] of all()) {
        if (connections.length >= limit) break;
        const val = decodeCtValue(v);
        const port = (a: string, p: number) => (key.family === 6 ? `[${a}]:${p}` : `${a}:${p}`);
        connections.push({
          direction: dirName(key.direction),
          ifindex: key.ifindex,
          endpointId: val.endpointId,
          protocol: protocolName(key.protocol),
          src: port(key.srcAddr, key.srcPort),
          dst: port(key.dstAddr, key.dstPort),
          remoteIdentity: val.remoteIdentity,
          match: String(matchName(val.match)),
          state: [
            val.flags & CtFlag.REVOKED ? 'revoked' : '',
            val.flags & CtFlag.CLOSING ? 'closing' : '',
            val.flags & CtFlag.SEEN_REPLY ? 'replied' : 'unreplied',
          ]
            .filter(Boolean)
            .join(','),
        });
      }
    }
    const counters = readCounters(get('counters'));
    const dropped = (reason: number): bigint =>
      counters.filter((c) => c.verdict === Verdict.DROPPED && c.reason === reason).reduce((n, c) => n + c.packets, 0n);
    return {
      pinRoot,
      mapEntries,
      endpoints: [...byId.values()].sort((a, b) => a.endpointId - b.endpointId),
      conntrack: {
        ipv4: { entries: mapEntries[MapName.conntrack4], capacity: get('conntrack4').maxEntries },
        ipv6: { entries: mapEntries[MapName.conntrack], capacity: get('conntrack').maxEntries },
        refusedOverBudget: dropped(DropReason.CT_BUDGET),
        refusedInsertFailed: dropped(DropReason.CT_FULL),
        midstreamMisses: readCtMisses(get('ctMiss')),
      },
      counters,
      lostEvents: readLostEvents(get('lostEvents')),
      connections,
    };
  } finally {
    for (const m of maps.values()) m.close();
  }
}

export function formatDatapath(v: DatapathView): string {
  const lines: string[] = [`datapath pinned under ${v.pinRoot}`, ''];
  lines.push(
    'maps: ' +
      Object.entries(v.mapEntries)
        .map(([k, n]) => `${k}=${n}`)
        .join(' '),
  );
  lines.push('', `endpoints (${v.endpoints.length}):`);
  for (const e of v.endpoints) {
    const iso =
      [e.ingressIsolated ? 'ingress' : '', e.egressIsolated ? 'egress' : ''].filter(Boolean).join('+') || 'none';
    const addrs = [e.ipv4, e.ipv6].filter(Boolean).join(',') || 'none';
    lines.push(
      `  #${e.endpointId} ifindex ${e.ifindex} identity ${e.identity} rev ${e.policyRev} isolated: ${iso} sources: ${addrs}`,
    );
    for (const x of e.entries) lines.push(`      allow ${x}`);
  }
  lines.push('', 'counters (packets / bytes):');
  for (const c of v.counters) {
    lines.push(
      `  ${c.directionName.padEnd(7)} ${c.verdictName.padEnd(9)} ${c.reasonName.padEnd(16)} ${String(c.packets).padStart(10)} ${String(c.bytes).padStart(14)}`,
    );
  }
  lines.push(`lost flow events: ${v.lostEvents}`);
  const pct = (f: { entries: number; capacity: number }) => `${((100 * f.entries) / f.capacity).toFixed(1)}%`;
  const ct = v.conntrack;
  lines.push(
    `conntrack: ipv4 ${ct.ipv4.entries}/${ct.ipv4.capacity} (${pct(ct.ipv4)}), ipv6 ${ct.ipv6.entries}/${ct.ipv6.capacity} (${pct(ct.ipv6)}); ` +
      `refused: ${ct.refusedOverBudget} over an endpoint's budget, ${ct.refusedInsertFailed} failed inserts; ` +
      `mid-stream misses (evicted, most likely): ${ct.midstreamMisses.ingress + ct.midstreamMisses.egress} ` +
      `(ingress ${ct.midstreamMisses.ingress}, egress ${ct.midstreamMisses.egress})`,
  );
  if (v.connections.length) {
    lines.push('', `connections (first ${v.connections.length}):`);
    for (const c of v.connections) {
      lines.push(
        `  ${c.direction.padEnd(7)} if${c.ifindex} ${c.protocol.padEnd(6)} ${c.src} -> ${c.dst} remote ${c.remoteIdentity} ${c.match} ${c.state}`,
      );
    }
  }
  return lines.join('\n');
}
