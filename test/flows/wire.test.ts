/**
 * Hubble's wire: every message and field weir shares with Hubble's Observer and Flow API
 * (Cilium v1.18's observer.proto and flow.proto) has Hubble's field number and type. The
 * table below is written from those published files, independently of observer.proto;
 * requests are encoded and responses decoded against it byte by byte. A filter field weir
 * cannot evaluate is refused with INVALID_ARGUMENT naming it; health and reflection answer.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { ObserverClient } from '../../agent/flows/client.js';
import { UNSUPPORTED_FILTER_FIELDS, SUPPORTED_FILTER_FIELDS } from '../../agent/flows/filter.js';
import { DROP_REASONS } from '../../agent/flows/names.js';
import { PROTO_JSON_FILE, protoJsonText } from '../../agent/flows/proto-json.js';
import { Observer } from '../../agent/flows/observer.js';
import { decodeFlowsResponse, encodeFlowResponse, messageType } from '../../agent/flows/proto.js';
import { startObserverServer, type ObserverServer } from '../../agent/flows/server.js';
import { buildFlow } from '../../agent/flows/flow.js';
import { Enricher } from '../../agent/flows/enrich.js';
import { MonotonicClock } from '../../agent/flows/clock.js';
import { denied, makeContext } from './fixtures.js';

type Row = [field: string, number: number, type: string, repeated?: 'repeated'];

/** Hubble's numbers and types (message -> fields). */
const HUBBLE: Record<string, Row[]> = {
  FlowFilter: [
    ['uuid', 29, 'string', 'repeated'],
    ['source_ip', 1, 'string', 'repeated'],
    ['source_ip_xlated', 34, 'string', 'repeated'],
    ['source_pod', 2, 'string', 'repeated'],
    ['source_fqdn', 7, 'string', 'repeated'],
    ['source_label', 10, 'string', 'repeated'],
    ['source_service', 16, 'string', 'repeated'],
    ['source_workload', 26, 'Workload', 'repeated'],
    ['source_cluster_name', 37, 'string', 'repeated'],
    ['destination_ip', 3, 'string', 'repeated'],
    ['destination_pod', 4, 'string', 'repeated'],
    ['destination_fqdn', 8, 'string', 'repeated'],
    ['destination_label', 11, 'string', 'repeated'],
    ['destination_service', 17, 'string', 'repeated'],
    ['destination_workload', 27, 'Workload', 'repeated'],
    ['destination_cluster_name', 38, 'string', 'repeated'],
    ['traffic_direction', 30, 'TrafficDirection', 'repeated'],
    ['verdict', 5, 'Verdict', 'repeated'],
    ['drop_reason_desc', 33, 'DropReason', 'repeated'],
    ['interface', 35, 'NetworkInterface', 'repeated'],
    ['event_type', 6, 'EventTypeFilter', 'repeated'],
    ['http_status_code', 9, 'string', 'repeated'],
    ['protocol', 12, 'string', 'repeated'],
    ['source_port', 13, 'string', 'repeated'],
    ['destination_port', 14, 'string', 'repeated'],
    ['reply', 15, 'bool', 'repeated'],
    ['dns_query', 18, 'string', 'repeated'],
    ['source_identity', 19, 'uint32', 'repeated'],
    ['destination_identity', 20, 'uint32', 'repeated'],
    ['http_method', 21, 'string', 'repeated'],
    ['http_path', 22, 'string', 'repeated'],
    ['http_url', 31, 'string', 'repeated'],
    ['http_header', 32, 'HTTPHeader', 'repeated'],
    ['tcp_flags', 23, 'TCPFlags', 'repeated'],
    ['node_name', 24, 'string', 'repeated'],
    ['node_labels', 36, 'string', 'repeated'],
    ['ip_version', 25, 'IPVersion', 'repeated'],
    ['trace_id', 28, 'string', 'repeated'],
    ['ip_trace_id', 39, 'uint64', 'repeated'],
    ['encrypted', 40, 'bool', 'repeated'],
    ['experimental', 999, 'Experimental'],
  ],
  GetFlowsRequest: [
    ['number', 1, 'uint64'],
    ['first', 9, 'bool'],
    ['follow', 3, 'bool'],
    ['blacklist', 5, 'FlowFilter', 'repeated'],
    ['whitelist', 6, 'FlowFilter', 'repeated'],
    ['since', 7, 'google.protobuf.Timestamp'],
    ['until', 8, 'google.protobuf.Timestamp'],
    ['field_mask', 10, 'google.protobuf.FieldMask'],
    ['experimental', 999, 'Experimental'],
    ['extensions', 150000, 'google.protobuf.Any', 'repeated'],
  ],
  GetFlowsResponse: [
    ['flow', 1, 'Flow'],
    ['node_status', 2, 'NodeStatusEvent'],
    ['lost_events', 3, 'LostEvent'],
    ['node_name', 1000, 'string'],
    ['time', 1001, 'google.protobuf.Timestamp'],
  ],
  ServerStatusResponse: [
    ['num_flows', 1, 'uint64'],
    ['max_flows', 2, 'uint64'],
    ['seen_flows', 3, 'uint64'],
    ['uptime_ns', 4, 'uint64'],
    ['num_connected_nodes', 5, 'google.protobuf.UInt32Value'],
    ['num_unavailable_nodes', 6, 'google.protobuf.UInt32Value'],
    ['unavailable_nodes', 7, 'string', 'repeated'],
    ['version', 8, 'string'],
  ],
  GetNodesResponse: [['nodes', 1, 'Node', 'repeated']],
  Node: [
    ['name', 1, 'string'],
    ['version', 2, 'string'],
    ['address', 3, 'string'],
    ['state', 4, 'NodeState'],
    ['tls', 5, 'TLS'],
    ['uptime_ns', 6, 'uint64'],
    ['num_flows', 7, 'uint64'],
    ['max_flows', 8, 'uint64'],
    ['seen_flows', 9, 'uint64'],
  ],
  TLS: [
    ['enabled', 1, 'bool'],
    ['server_name', 2, 'string'],
  ],
  NodeStatusEvent: [
    ['state_change', 1, 'NodeState'],
    ['node_names', 2, 'string', 'repeated'],
    ['message', 3, 'string'],
  ],
  LostEvent: [
    ['source', 1, 'LostEventSource'],
    ['num_events_lost', 2, 'uint64'],
    ['cpu', 3, 'google.protobuf.Int32Value'],
  ],
  Flow: [
    ['time', 1, 'google.protobuf.Timestamp'],
    ['uuid', 34, 'string'],
    ['verdict', 2, 'Verdict'],
    ['drop_reason', 3, 'uint32'],
    ['IP', 5, 'IP'],
    ['l4', 6, 'Layer4'],
    ['source', 8, 'Endpoint'],
    ['destination', 9, 'Endpoint'],
    ['Type', 10, 'FlowType'],
    ['node_name', 11, 'string'],
    ['reply', 16, 'bool'],
    ['event_type', 19, 'CiliumEventType'],
    ['destination_service', 21, 'Service'],
    ['traffic_direction', 22, 'TrafficDirection'],
    ['policy_match_type', 23, 'uint32'],
    ['drop_reason_desc', 25, 'DropReason'],
    ['is_reply', 26, 'google.protobuf.BoolValue'],
    ['interface', 28, 'NetworkInterface'],
    ['Summary', 100000, 'string'],
  ],
  Service: [
    ['name', 1, 'string'],
    ['namespace', 2, 'string'],
  ],
  Endpoint: [
    ['ID', 1, 'uint32'],
    ['identity', 2, 'uint32'],
    ['namespace', 3, 'string'],
    ['labels', 4, 'string', 'repeated'],
    ['pod_name', 5, 'string'],
    ['workloads', 6, 'Workload', 'repeated'],
  ],
  IP: [
    ['source', 1, 'string'],
    ['destination', 2, 'string'],
    ['ipVersion', 3, 'IPVersion'],
    ['encrypted', 4, 'bool'],
  ],
  Layer4: [
    ['TCP', 1, 'TCP'],
    ['UDP', 2, 'UDP'],
    ['ICMPv4', 3, 'ICMPv4'],
    ['ICMPv6', 4, 'ICMPv6'],
    ['SCTP', 5, 'SCTP'],
  ],
  TCP: [
    ['source_port', 1, 'uint32'],
    ['destination_port', 2, 'uint32'],
    ['flags', 3, 'TCPFlags'],
  ],
  UDP: [
    ['source_port', 1, 'uint32'],
    ['destination_port', 2, 'uint32'],
  ],
  SCTP: [
    ['source_port', 1, 'uint32'],
    ['destination_port', 2, 'uint32'],
  ],
  ICMPv4: [
    ['type', 1, 'uint32'],
    ['code', 2, 'uint32'],
  ],
  ICMPv6: [
    ['type', 1, 'uint32'],
    ['code', 2, 'uint32'],
  ],
  TCPFlags: [
    ['FIN', 1, 'bool'],
    ['SYN', 2, 'bool'],
    ['RST', 3, 'bool'],
    ['PSH', 4, 'bool'],
    ['ACK', 5, 'bool'],
    ['URG', 6, 'bool'],
    ['ECE', 7, 'bool'],
    ['CWR', 8, 'bool'],
    ['NS', 9, 'bool'],
  ],
  NetworkInterface: [
    ['index', 1, 'uint32'],
    ['name', 2, 'string'],
  ],
  Workload: [
    ['name', 1, 'string'],
    ['kind', 2, 'string'],
  ],
  CiliumEventType: [
    ['type', 1, 'int32'],
    ['sub_type', 2, 'int32'],
  ],
  EventTypeFilter: [
    ['type', 1, 'int32'],
    ['match_sub_type', 2, 'bool'],
    ['sub_type', 3, 'int32'],
  ],
};

/** Hubble's enum values (the ones weir uses). */
const HUBBLE_ENUMS: Record<string, Record<string, number>> = {
  Verdict: {
    VERDICT_UNKNOWN: 0,
    FORWARDED: 1,
    DROPPED: 2,
    ERROR: 3,
    AUDIT: 4,
    REDIRECTED: 5,
    TRACED: 6,
    TRANSLATED: 7,
  },
  TrafficDirection: { TRAFFIC_DIRECTION_UNKNOWN: 0, INGRESS: 1, EGRESS: 2 },
  IPVersion: { IP_NOT_USED: 0, IPv4: 1, IPv6: 2 },
  FlowType: { UNKNOWN_TYPE: 0, L3_L4: 1, L7: 2, SOCK: 3 },
  LostEventSource: {
    UNKNOWN_LOST_EVENT_SOURCE: 0,
    PERF_EVENT_RING_BUFFER: 1,
    OBSERVER_EVENTS_QUEUE: 2,
    HUBBLE_RING_BUFFER: 3,
  },
  NodeState: { UNKNOWN_NODE_STATE: 0, NODE_CONNECTED: 1, NODE_UNAVAILABLE: 2, NODE_GONE: 3, NODE_ERROR: 4 },
  DropReason: {
    DROP_REASON_UNKNOWN: 0,
    INVALID_SOURCE_IP: 132,
    POLICY_DENIED: 133,
    INVALID_PACKET_DROPPED: 134,
    CT_TRUNCATED_OR_INVALID_HEADER: 135,
    UNSUPPORTED_L3_PROTOCOL: 139,
    CT_MAP_INSERTION_FAILED: 155,
    INVALID_IPV6_EXTENSION_HEADER: 156,
    SERVICE_BACKEND_NOT_FOUND: 158,
    NO_MAPPING_FOR_NAT_MASQUERADE: 167,
    FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND: 175,
  },
};

const WIRE_TYPE: Record<string, number> = { string: 2, bool: 0, uint32: 0, int32: 0, uint64: 0 };
const wireType = (type: string, enumLike: boolean): number => (enumLike ? 0 : (WIRE_TYPE[type] ?? 2));

/** Field numbers and wire types present in an encoded message, in order. */
function tags(buf: Uint8Array): Array<[number, number]> {
  const r = protobuf.Reader.create(buf);
  const out: Array<[number, number]> = [];
  while (r.pos < r.len) {
    const t = r.uint32();
    out.push([t >>> 3, t & 7]);
    r.skipType(t & 7);
  }
  return out;
}

function sampleValue(type: string): unknown {
  if (type === 'string') return 'x';
  if (type === 'bool') return true;
  if (['uint32', 'int32', 'uint64'].includes(type)) return 7;
  if (type in HUBBLE_ENUMS) return Object.values(HUBBLE_ENUMS[type]!).find((v) => v !== 0);
  if (type === 'google.protobuf.Timestamp') return { seconds: 5, nanos: 1 };
  if (type.endsWith('Value')) return { value: 3 };
  if (type === 'google.protobuf.FieldMask') return { paths: ['uuid'] };
  if (type === 'Experimental') return { cel_expression: ['true'] };
  if (type === 'TCPFlags') return { SYN: true };
  if (type === 'EventTypeFilter') return { type: 1 };
  if (type === 'NetworkInterface') return { name: 'eth0' };
  if (type === 'Workload' || type === 'HTTPHeader') return { name: 'n', key: 'k' };
  return {};
}

describe("Hubble's field numbers and types", () => {
  it('the JSON the flow API loads is observer.proto as it is (node dist/agent/flows/proto-json.js rewrites it)', () => {
    expect(JSON.parse(readFileSync(PROTO_JSON_FILE, 'utf8'))).toEqual(JSON.parse(protoJsonText()));
  });

  for (const [msg, rows] of Object.entries(HUBBLE)) {
    it(`${msg}: every shared field has Hubble's number and type, weir's own are >= 1000`, () => {
      const t = messageType(msg);
      for (const [field, id, type, rep] of rows) {
        const f = t.fields[field];
        expect({ msg, field, id: f?.id, type: f?.type, repeated: f?.repeated }).toEqual({
          msg,
          field,
          id,
          type,
          repeated: rep === 'repeated',
        });
      }
      const shared = new Set(rows.map((r) => r[0]));
      for (const f of Object.values(t.fields))
        if (!shared.has(f.name)) expect([msg, f.name, f.id >= 1000]).toEqual([msg, f.name, true]);
    });
  }

  it('encodes each field of a request at its Hubble number and wire type', () => {
    for (const msg of ['FlowFilter', 'GetFlowsRequest']) {
      const t = messageType(msg);
      for (const [field, id, type, rep] of HUBBLE[msg]!) {
        const v = sampleValue(type);
        const bytes = t.encode(t.fromObject({ [field]: rep ? [v] : v })).finish();
        const enumLike = type in HUBBLE_ENUMS;
        // packed repeated scalars travel as one length-delimited field
        const wt = rep && wireType(type, enumLike) === 0 ? [0, 2] : [wireType(type, enumLike)];
        const got = tags(bytes);
        expect([msg, field, got.length, got[0]![0]]).toEqual([msg, field, 1, id]);
        expect(wt).toContain(got[0]![1]);
      }
    }
  });

  it('decodes a GetFlowsResponse written by hand with Hubble numbers', () => {
    const o = { clock: new MonotonicClock(), enricher: new Enricher(makeContext()), nodeName: 'n1' };
    const flowBytes = messageType('Flow')
      .encode(buildFlow(denied(), o) as unknown as protobuf.Message)
      .finish();
    // Check the flow's own bytes against the table: verdict (2) DROPPED, drop_reason_desc (25) 133.
    const flowTags = new Map(tags(flowBytes).map(([n, w]) => [n, w]));
    expect(flowTags.get(2)).toBe(0);
    expect(flowTags.get(25)).toBe(0);
    expect(flowTags.get(11)).toBe(2); // node_name
    expect(flowTags.get(100000)).toBe(2); // Summary
    const w = protobuf.Writer.create();
    w.uint32((1 << 3) | 2).bytes(flowBytes);
    w.uint32((1000 << 3) | 2).string('n1');
    const r = decodeFlowsResponse(w.finish());
    expect(r.node_name).toBe('n1');
    expect(r.flow).toMatchObject({
      verdict: 2,
      drop_reason_desc: 133,
      node_name: 'n1',
      event_type: { type: 1, sub_type: 133 },
    });
    // node_status (2) in Hubble's oneof
    const ns = protobuf.Writer.create();
    ns.uint32((1 << 3) | 0).uint32(2);
    ns.uint32((2 << 3) | 2).string('node-b');
    const w2 = protobuf.Writer.create();
    w2.uint32((2 << 3) | 2).bytes(ns.finish());
    expect(decodeFlowsResponse(w2.finish()).node_status).toEqual({
      state_change: 2,
      node_names: ['node-b'],
      message: '',
    });
    // weir's pre-encoded response path writes the same numbers
    const pre = encodeFlowResponse(buildFlow(denied(), o), 'n1');
    expect(tags(pre).map(([n]) => n)).toEqual([1, 1000, 1001]);
  });

  it("enum values are Hubble's, drop reasons map to Hubble's where it has them and to >= 1000 otherwise", () => {
    for (const [name, values] of Object.entries(HUBBLE_ENUMS)) {
      const e = messageType('Flow').root.lookupEnum(`observer.${name}`);
      for (const [k, v] of Object.entries(values)) expect([name, k, e.values[k]]).toEqual([name, k, v]);
      if (name === 'DropReason') {
        const hubble = new Set(Object.values(values));
        for (const [k, v] of Object.entries(e.values)) expect([k, hubble.has(v) || v >= 1000]).toEqual([k, true]);
      }
    }
    const e = messageType('Flow').root.lookupEnum('observer.DropReason');
    for (const d of DROP_REASONS) {
      expect([d.code, e.values[d.name]]).toEqual([d.code, d.proto]);
      if (d.name in HUBBLE_ENUMS.DropReason!) expect(d.proto).toBe(HUBBLE_ENUMS.DropReason![d.name]);
      else expect(d.proto).toBeGreaterThanOrEqual(1000);
    }
    const byCode = new Map(DROP_REASONS.map((d) => [d.code, d.proto]));
    expect(byCode.get(1)).toBe(133); // POLICY_DENIED
    expect(byCode.get(8)).toBeGreaterThanOrEqual(1000); // NO_ENDPOINT, weir only
    expect(byCode.get(9)).toBe(132); // INVALID_SOURCE_IP
  });

  it('every FlowFilter field is either evaluated or refused', () => {
    const all = HUBBLE.FlowFilter!.map((r) => r[0]);
    const known = new Set<string>([...SUPPORTED_FILTER_FIELDS, ...UNSUPPORTED_FILTER_FIELDS]);
    expect(all.filter((f) => !known.has(f))).toEqual([]);
  });
});

describe('the Observer server speaks to Hubble clients', () => {
  let dir: string;
  let server: ObserverServer;
  let observer: Observer;
  const sock = () => `unix:${join(dir, 'observer.sock')}`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wob-wire-'));
    observer = new Observer({ nodeName: 'wob-node', context: makeContext(), capacity: 10 });
    observer.ingest([denied()]);
    server = await startObserverServer(observer, { socketPath: join(dir, 'observer.sock') });
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** GetFlows with a request encoded by hand (field number -> raw bytes), as another client would. */
  function rawGetFlows(req: Uint8Array): Promise<{ code: number; details: string; n: number }> {
    const client = new grpc.Client(sock(), grpc.credentials.createInsecure());
    return new Promise((resolve) => {
      let n = 0;
      const call = client.makeServerStreamRequest(
        '/observer.Observer/GetFlows',
        (b: Uint8Array) => Buffer.from(b),
        (b: Buffer) => b,
        req,
      );
      call.on('data', () => n++);
      call.on('error', (e: grpc.ServiceError) => {
        client.close();
        resolve({ code: e.code, details: e.details, n });
      });
      call.on('end', () => {
        client.close();
        resolve({ code: 0, details: '', n });
      });
    });
  }

  const filterWith = (fieldNo: number, value: string): Uint8Array => {
    const ff = protobuf.Writer.create();
    ff.uint32((fieldNo << 3) | 2).string(value);
    const w = protobuf.Writer.create();
    w.uint32((1 << 3) | 0).uint64(10);
    w.uint32((6 << 3) | 2).bytes(ff.finish()); // whitelist
    return w.finish();
  };

  it('refuses a filter field it cannot evaluate with INVALID_ARGUMENT naming the field', async () => {
    const dns = await rawGetFlows(filterWith(18, 'kube.*')); // dns_query
    expect(dns.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(dns.details).toContain('"dns_query"');
    expect(dns.n).toBe(0);
    const svc = await rawGetFlows(filterWith(16, 'shop/web')); // source_service
    expect(svc.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(svc.details).toContain('"source_service"');
  });

  it('evaluates drop_reason_desc at field 33', async () => {
    const w = protobuf.Writer.create();
    const ff = protobuf.Writer.create();
    ff.uint32((33 << 3) | 2)
      .fork()
      .uint32(133)
      .ldelim();
    w.uint32((1 << 3) | 0).uint64(10);
    w.uint32((6 << 3) | 2).bytes(ff.finish());
    expect(await rawGetFlows(w.finish())).toEqual({ code: 0, details: '', n: 1 });
    const w2 = protobuf.Writer.create();
    const ff2 = protobuf.Writer.create();
    ff2
      .uint32((33 << 3) | 2)
      .fork()
      .uint32(134)
      .ldelim();
    w2.uint32((1 << 3) | 0).uint64(10);
    w2.uint32((6 << 3) | 2).bytes(ff2.finish());
    expect(await rawGetFlows(w2.finish())).toEqual({ code: 0, details: '', n: 0 });
  });

  it('answers grpc.health.v1.Health/Check and GetNodes', async () => {
    const pkg = loadSync(join(process.cwd(), 'node_modules/grpc-health-check/proto/health/v1/health.proto'), {
      keepCase: true,
      enums: String,
    });
    const Health = grpc.loadPackageDefinition(pkg).grpc as unknown as {
      health: {
        v1: {
          Health: new (
            t: string,
            c: grpc.ChannelCredentials,
          ) => grpc.Client & {
            Check(req: { service: string }, cb: (e: grpc.ServiceError | null, r: { status: string }) => void): void;
          };
        };
      };
    };
    const hc = new Health.health.v1.Health(sock(), grpc.credentials.createInsecure());
    const check = (service: string) =>
      new Promise<{ status: string }>((res, rej) =>
        hc.Check({ service }, (e: Error | null, r: { status: string }) => (e ? rej(e) : res(r))),
      );
    expect((await check('')).status).toBe('SERVING');
    expect((await check('observer.Observer')).status).toBe('SERVING');
    await expect(check('nope')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    hc.close();

    const c = new ObserverClient(sock());
    const nodes = await c.getNodes();
    expect(nodes.nodes).toHaveLength(1);
    expect(nodes.nodes[0]).toMatchObject({ name: 'wob-node', state: 1, num_flows: 1 });
    c.close();
  });

  it('loads @grpc/reflection only at the first reflection request (v1alpha answered too)', async () => {
    // a server of its own in a fresh process: has starting it loaded the reflection package?
    const probe = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { createRequire } = await import('node:module');
const require = createRequire(import.meta.url);
const { Observer } = await import('./dist/agent/flows/observer.js');
const { startObserverServer } = await import('./dist/agent/flows/server.js');
const { makeContext } = await import('./dist/test/flows/fixtures.js');
const s = await startObserverServer(new Observer({ nodeName: 'n', context: makeContext(), capacity: 1 }), { socketPath: '', tcpAddress: '127.0.0.1:0' });
const loaded = (p) => Object.keys(require.cache).some((k) => k.includes('/node_modules/' + p + '/'));
console.log(JSON.stringify({ grpc: loaded('@grpc/grpc-js'), reflection: loaded('@grpc/reflection') }));
await s.close();`,
      ],
      { encoding: 'utf8' },
    );
    expect(JSON.parse(probe.stdout)).toEqual({ grpc: true, reflection: false });

    const pkg = loadSync(
      join(process.cwd(), 'node_modules/@grpc/reflection/build/proto/grpc/reflection/v1alpha/reflection.proto'),
      { keepCase: true },
    );
    const R = (
      grpc.loadPackageDefinition(pkg).grpc as unknown as {
        reflection: {
          v1alpha: {
            ServerReflection: new (
              t: string,
              c: grpc.ChannelCredentials,
            ) => grpc.Client & { ServerReflectionInfo(): grpc.ClientDuplexStream<object, Record<string, unknown>> };
          };
        };
      }
    ).reflection.v1alpha.ServerReflection;
    const rc = new R(sock(), grpc.credentials.createInsecure());
    const list = await new Promise<Record<string, unknown>>((res, rej) => {
      const call = rc.ServerReflectionInfo();
      call.on('data', (d) => {
        res(d);
        call.end();
      });
      call.on('error', rej);
      call.write({ list_services: '' });
    });
    rc.close();
    const names = (list as { list_services_response: { service: Array<{ name: string }> } }).list_services_response
      .service;
    expect(names.map((n) => n.name)).toContain('observer.Observer');
  });

  it('lists its services and describes FlowFilter through server reflection', async () => {
    const pkg = loadSync(
      join(process.cwd(), 'node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto'),
      {
        keepCase: true,
      },
    );
    const R = (
      grpc.loadPackageDefinition(pkg).grpc as unknown as {
        reflection: {
          v1: {
            ServerReflection: new (
              t: string,
              c: grpc.ChannelCredentials,
            ) => grpc.Client & { ServerReflectionInfo(): grpc.ClientDuplexStream<object, Record<string, unknown>> };
          };
        };
      }
    ).reflection.v1.ServerReflection;
    const rc = new R(sock(), grpc.credentials.createInsecure());
    const ask = (req: object) =>
      new Promise<Record<string, unknown>>((res, rej) => {
        const call = rc.ServerReflectionInfo();
        call.on('data', (d) => {
          res(d);
          call.end();
        });
        call.on('error', rej);
        call.write(req);
      });
    const list = (await ask({ list_services: '' })) as { list_services_response: { service: Array<{ name: string }> } };
    const names = list.list_services_response.service.map((s) => s.name);
    expect(names).toContain('observer.Observer');
    const desc = (await ask({ file_containing_symbol: 'observer.FlowFilter' })) as {
      file_descriptor_response: { file_descriptor_proto: Buffer[] };
    };
    const text = Buffer.concat(desc.file_descriptor_response.file_descriptor_proto).toString('latin1');
    expect(text).toContain('drop_reason_desc');
    rc.close();
  });
});
