/**
 * The flow API's protobuf codec (protobufjs over agent/flows/observer.proto, field names
 * kept as in the .proto so objects read like Hubble's JSON) and the gRPC service
 * definition both the server and the client use.
 */
import type { ServiceDefinition } from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs/light.js';
import { assetPath } from './assets.js';
import { timestampToRfc3339 } from './clock.js';
import { flowUuid } from './flow.js';
import { FlowWireEncoder } from './flow-wire.js';
import type {
  Flow,
  GetFlowsRequest,
  GetFlowsResponse,
  GetNodesResponse,
  ServerStatusResponse,
  Timestamp,
} from './types.js';

export const PROTO_FILE = 'agent/flows/observer.proto';
/** observer.proto compiled to JSON (agent/flows/proto-json.ts): no .proto parser at start-up. */
export const PROTO_JSON_FILE = 'agent/flows/observer.json';

let root: protobuf.Root | undefined;

export function protoRoot(): protobuf.Root {
  if (root === undefined) {
    const r = protobuf.Root.fromJSON(
      JSON.parse(readFileSync(assetPath(PROTO_JSON_FILE), 'utf8')) as protobuf.INamespace,
    );
    r.resolveAll();
    root = r;
  }
  return root;
}

export function messageType(name: string): protobuf.Type {
  return protoRoot().lookupType(`observer.${name}`);
}

const FIELD_FLOW = (1 << 3) | 2;
const FIELD_LOST = (3 << 3) | 2;
const FIELD_NODE_NAME = (1000 << 3) | 2;
const FIELD_TIME = (1001 << 3) | 2;

let wire: FlowWireEncoder | undefined;

/** The flow writer (flow-wire.ts) over this schema's types. */
function flowWire(): FlowWireEncoder {
  wire ??= new FlowWireEncoder({
    Flow: messageType('Flow'),
    Endpoint: messageType('Endpoint'),
    CiliumEventType: messageType('CiliumEventType'),
    Service: messageType('Service'),
    NetworkInterface: messageType('NetworkInterface'),
    TCPFlags: messageType('TCPFlags'),
    BoolValue: protoRoot().lookupType('google.protobuf.BoolValue'),
  });
  return wire;
}

/** A Flow's encoding (giving it its UUID first). */
export function encodeFlow(f: Flow): Uint8Array {
  flowUuid(f);
  return flowWire().encode(f);
}

/**
 * A flow's response rides on the flow itself, under a key nothing enumerates, so it is encoded
 * once however many clients receive it (a WeakMap entry per flow cost more than the encoding).
 */
const RESPONSE = Symbol('response');
type WithResponse = Flow & { [RESPONSE]?: { nodeName: string; bytes: Buffer } };

/** GetFlowsResponse bytes for a flow, encoded once per flow and node name. */
export function encodeFlowResponse(f: Flow, nodeName: string): Buffer {
  const cached = (f as WithResponse)[RESPONSE];
  if (cached !== undefined && cached.nodeName === nodeName) return cached.bytes;
  flowUuid(f);
  let bytes = flowWire().response(f, nodeName);
  if (bytes === undefined) {
    const w = protobuf.Writer.create();
    w.uint32(FIELD_FLOW).bytes(encodeFlow(f));
    if (nodeName) w.uint32(FIELD_NODE_NAME).string(nodeName);
    w.uint32(FIELD_TIME).fork().uint32(8).int64(f.time.seconds).uint32(16).int32(f.time.nanos).ldelim();
    bytes = Buffer.from(w.finish());
  }
  if (cached !== undefined) (f as WithResponse)[RESPONSE] = { nodeName, bytes };
  else if (Object.isExtensible(f)) Object.defineProperty(f, RESPONSE, { value: { nodeName, bytes }, writable: true });
  return bytes;
}

export function encodeLostResponse(source: number, n: number, nodeName: string, time: Timestamp): Buffer {
  const lost = messageType('LostEvent')
    .encode({ source, num_events_lost: n } as unknown as protobuf.Message)
    .finish();
  const w = protobuf.Writer.create();
  w.uint32(FIELD_LOST).bytes(lost);
  if (nodeName) w.uint32(FIELD_NODE_NAME).string(nodeName);
  w.uint32(FIELD_TIME).fork().uint32(8).int64(time.seconds).uint32(16).int32(time.nanos).ldelim();
  return Buffer.from(w.finish());
}

/** A relay's GetFlowsResponse telling a client that nodes changed state (Hubble's node_status). */
export function encodeNodeStatusResponse(
  status: { state_change: number; node_names: string[]; message: string },
  time: Timestamp,
): Buffer {
  return Buffer.from(
    messageType('GetFlowsResponse')
      .encode({ node_status: status, time } as unknown as protobuf.Message)
      .finish(),
  );
}

const decodeOpts: protobuf.IConversionOptions = { longs: Number, enums: Number, defaults: true, arrays: true };

export function decodeFlowsResponse(buf: Uint8Array): GetFlowsResponse {
  const t = messageType('GetFlowsResponse');
  return t.toObject(t.decode(buf), decodeOpts) as GetFlowsResponse;
}

function encodeMessage(name: string, obj: object): Buffer {
  return Buffer.from(
    messageType(name)
      .encode(obj as protobuf.Message)
      .finish(),
  );
}

function decodeMessage<T>(name: string, buf: Uint8Array): T {
  const t = messageType(name);
  return t.toObject(t.decode(buf), { longs: Number, enums: Number, arrays: true }) as T;
}

/**
 * The Observer service. Responses of GetFlows travel as pre-encoded Buffers on the
 * server side (see encodeFlowResponse) and are decoded by the client.
 */
export function observerServiceDefinition(): ServiceDefinition {
  return {
    GetFlows: {
      path: '/observer.Observer/GetFlows',
      requestStream: false,
      responseStream: true,
      requestSerialize: (r: GetFlowsRequest) => encodeMessage('GetFlowsRequest', r),
      requestDeserialize: (b: Buffer) => decodeMessage<GetFlowsRequest>('GetFlowsRequest', b),
      responseSerialize: (r: Buffer) => r,
      responseDeserialize: (b: Buffer) => decodeFlowsResponse(b),
    },
    GetNodes: {
      path: '/observer.Observer/GetNodes',
      requestStream: false,
      responseStream: false,
      requestSerialize: () => Buffer.alloc(0),
      requestDeserialize: () => ({}),
      responseSerialize: (r: GetNodesResponse) => encodeMessage('GetNodesResponse', r),
      responseDeserialize: (b: Buffer) =>
        messageType('GetNodesResponse').toObject(
          messageType('GetNodesResponse').decode(b),
          decodeOpts,
        ) as GetNodesResponse,
    },
    ServerStatus: {
      path: '/observer.Observer/ServerStatus',
      requestStream: false,
      responseStream: false,
      requestSerialize: () => Buffer.alloc(0),
      requestDeserialize: () => ({}),
      responseSerialize: (r: ServerStatusResponse) => encodeMessage('ServerStatusResponse', r),
      responseDeserialize: (b: Buffer) =>
        messageType('ServerStatusResponse').toObject(
          messageType('ServerStatusResponse').decode(b),
          decodeOpts,
        ) as ServerStatusResponse,
    },
  };
}

/**
 * protobuf's JSON mapping of a GetFlowsResponse as Hubble prints it: proto field names,
 * enum names, RFC 3339 times, wrappers as plain values, default values left out.
 */
export function flowsResponseToJson(r: GetFlowsResponse): Record<string, unknown> {
  const t = messageType('GetFlowsResponse');
  const obj = t.toObject(t.fromObject(pruneDefaults(r) as Record<string, unknown>), {
    longs: Number,
    enums: String,
    defaults: false,
    arrays: false,
  });
  return rewriteWellKnown(obj) as Record<string, unknown>;
}

/** protobuf's JSON mapping of one Flow (Hubble's `-o json`). */
export function flowToJson(f: Flow): Record<string, unknown> {
  const t = messageType('Flow');
  const obj = t.toObject(t.fromObject(pruneDefaults(f) as Record<string, unknown>), {
    longs: Number,
    enums: String,
    defaults: false,
    arrays: false,
  });
  return rewriteWellKnown(obj) as Record<string, unknown>;
}

/** Drops proto3 default values (0, "", false, empty lists; zero enums too) as protobuf's JSON does. */
function pruneDefaults(v: unknown, key = ''): unknown {
  if (Array.isArray(v)) return v.map((x) => pruneDefaults(x));
  if (v === null || typeof v !== 'object') return v;
  if (key === 'is_reply') return v; // a wrapper: present means known, even when false
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (x === null || x === undefined || x === 0 || x === '' || x === false || (Array.isArray(x) && x.length === 0))
      continue;
    out[k] = pruneDefaults(x, k);
  }
  return out;
}

function isTimestamp(v: Record<string, unknown>): boolean {
  const keys = Object.keys(v);
  return keys.length > 0 && keys.every((k) => k === 'seconds' || k === 'nanos');
}

function rewriteWellKnown(v: unknown, key = ''): unknown {
  if (Array.isArray(v)) return v.map((x) => rewriteWellKnown(x));
  if (v === null || typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  if ((key === 'time' || key === 'since' || key === 'until') && isTimestamp(o)) {
    return timestampToRfc3339({ seconds: Number(o.seconds ?? 0), nanos: Number(o.nanos ?? 0) });
  }
  if (key === 'is_reply') return Boolean(o.value);
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(o)) out[k] = rewriteWellKnown(x, k);
  return out;
}
