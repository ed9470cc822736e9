/**
 * The flow API's gRPC server: a unix socket by default, TCP when asked.
 */
import { mkdirSync, rmSync, existsSync, chmodSync } from 'node:fs';
import { dirname } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { nsToTimestamp } from './clock.js';
import { FilterError } from './filter.js';
import { EventEmitter } from 'node:events';
import { HealthImplementation } from 'grpc-health-check';
import { encodeFlowResponse, encodeLostResponse, observerServiceDefinition, PROTO_FILE } from './proto.js';
import { assetPath, weirVersion } from './assets.js';
import type { Observer } from './observer.js';
import type { FlowSink, SinkItem } from './subscription.js';
import {
  LostEventSource,
  NodeState,
  type GetFlowsRequest,
  type GetNodesResponse,
  type ServerStatusResponse,
} from './types.js';

/** PEM material for a TCP listener with mutual TLS: clients must present a certificate signed by `ca`. */
export interface TlsFiles {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

export interface ObserverServerOptions {
  /** Unix socket path; empty string for none. */
  socketPath?: string;
  /** "host:port" for a TCP listener (opt-in). */
  tcpAddress?: string;
  /** Mutual TLS for the TCP listener; without it the listener is plaintext. */
  tls?: TlsFiles;
}

/** What a server answers to GetFlows, GetNodes and ServerStatus: an agent's Observer or the relay. */
export interface ObserverBackend {
  nodeName: string;
  getFlows(call: grpc.ServerWritableStream<GetFlowsRequest, Buffer>): void;
  getNodes(): Promise<GetNodesResponse>;
  serverStatus(): Promise<ServerStatusResponse>;
}

export interface ObserverServer {
  /** What it listens on: "unix:/run/weir/observer.sock", "127.0.0.1:4245". */
  addresses: string[];
  close(): Promise<void>;
}

function bind(server: grpc.Server, address: string, creds = grpc.ServerCredentials.createInsecure()): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(address, creds, (err, port) => (err ? reject(err) : resolve(port))),
  );
}

export function serverCredentials(tls: TlsFiles | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(tls.ca, [{ private_key: tls.key, cert_chain: tls.cert }], true);
}

/**
 * Messages handed to gRPC but not yet written to the connection, per client. The
 * stream's own buffer says "full" after 16 messages, which costs a round trip through
 * the event loop every 16 flows; a deeper window keeps a fast client streaming at
 * full speed while still bounding what a slow client can hold (the rest waits in the
 * subscription's bounded queue, and beyond that is dropped and counted).
 */
const MAX_IN_FLIGHT = 256;

export function sinkFor(call: grpc.ServerWritableStream<GetFlowsRequest, Buffer>, nodeName: string): FlowSink {
  let inFlight = 0;
  let drain: (() => void) | undefined;
  let waiting = false;
  const written = () => {
    inFlight--;
    if (waiting && inFlight <= MAX_IN_FLIGHT / 2) {
      waiting = false;
      drain?.();
    }
  };
  const send = (buf: Buffer): boolean => {
    inFlight++;
    call.write(buf, written);
    if (inFlight >= MAX_IN_FLIGHT) waiting = true;
    return !waiting;
  };
  return {
    write(item: SinkItem): boolean {
      if ('flow' in item) return send(encodeFlowResponse(item.flow, nodeName));
      const source =
        item.source === 'datapath' ? LostEventSource.PERF_EVENT_RING_BUFFER : LostEventSource.OBSERVER_EVENTS_QUEUE;
      return send(encodeLostResponse(source, item.lost, nodeName, nsToTimestamp(BigInt(Date.now()) * 1_000_000n)));
    },
    onDrain(cb) {
      drain = cb;
    },
    end() {
      call.end();
    },
  };
}

/** The reflection services' one method, in both published versions. */
const REFLECTION_PATHS = [
  '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
  '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo',
];

type Method = grpc.MethodDefinition<unknown, unknown>;
type Handler = (stream: EventEmitter & { write(m: unknown): void; end(): void }) => void;

let reflection: Promise<Map<string, { method: Method; handler: Handler }>> | undefined;

/**
 * @grpc/reflection's service for observer.proto, built at the first reflection request: it
 * parses the .proto with @grpc/proto-loader and describes every type, which costs a process
 * about 8 MB that an agent nobody points grpcurl at never needs.
 */
function reflectionHandlers(): Promise<Map<string, { method: Method; handler: Handler }>> {
  reflection ??= (async () => {
    const [{ ReflectionService }, { loadSync }] = await Promise.all([
      import('@grpc/reflection'),
      import('@grpc/proto-loader'),
    ]);
    const found = new Map<string, { method: Method; handler: Handler }>();
    // the service registers itself on a server: take its methods and handlers instead
    const collect = {
      addService(def: grpc.ServiceDefinition, impl: Record<string, Handler>) {
        for (const [name, method] of Object.entries(def)) found.set(method.path, { method, handler: impl[name]! });
      },
    };
    new ReflectionService(loadSync(assetPath(PROTO_FILE), { keepCase: true })).addToServer(
      collect as unknown as grpc.Server,
    );
    return found;
  })();
  return reflection;
}

/**
 * Server reflection (grpcurl without the .proto), registered at once with a pass-through codec
 * and answered by @grpc/reflection, which is loaded at the first request. Until then the call's
 * messages wait in the stream.
 */
function addLazyReflection(server: grpc.Server): void {
  const raw = (b: Buffer) => b;
  for (const path of REFLECTION_PATHS) {
    const def = {
      ServerReflectionInfo: {
        path,
        requestStream: true,
        responseStream: true,
        requestSerialize: raw,
        requestDeserialize: raw,
        responseSerialize: raw,
        responseDeserialize: raw,
      },
    };
    server.addService(def, {
      ServerReflectionInfo: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        const refuse = (why: string) => call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: why });
        reflectionHandlers().then(
          (found) => {
            const real = found.get(path);
            if (!real) return refuse(`reflection: @grpc/reflection serves no ${path}`);
            // the real handler's stream: decoded messages in, encoded ones out
            const stream = Object.assign(new EventEmitter(), {
              write: (m: unknown) => call.write(real.method.responseSerialize(m)),
              end: () => call.end(),
            });
            real.handler(stream);
            call.on('data', (b: Buffer) => stream.emit('data', real.method.requestDeserialize(b)));
            call.on('end', () => stream.emit('end'));
          },
          (e: Error) => refuse(`reflection: ${e.message}`),
        );
      },
    });
  }
}

/** The Observer service of one agent: its own flows, itself as the one node. */
export function agentBackend(observer: Observer, tls: boolean): ObserverBackend {
  const version = weirVersion();
  const status = (): ServerStatusResponse => {
    const s = observer.status();
    return {
      num_flows: s.numFlows,
      max_flows: s.maxFlows,
      seen_flows: s.seenFlows,
      uptime_ns: Number(s.uptimeNs),
      version,
      lost_events: s.lostEvents,
      client_dropped_flows: s.clientDroppedFlows,
      connected_clients: s.connectedClients,
      node_name: observer.nodeName,
    };
  };
  return {
    nodeName: observer.nodeName,
    getFlows(call) {
      let sub;
      try {
        sub = observer.open(call.request, sinkFor(call, observer.nodeName));
      } catch (e) {
        if (e instanceof FilterError) {
          call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: `invalid flow filter: ${e.message}` });
          return;
        }
        throw e;
      }
      const done = () => observer.close(sub);
      call.on('cancelled', done);
      call.on('close', done);
      call.on('error', done);
    },
    getNodes() {
      const s = status();
      return Promise.resolve({
        nodes: [
          {
            name: observer.nodeName,
            version,
            address: '',
            state: NodeState.NODE_CONNECTED,
            tls: { enabled: tls, server_name: '' },
            uptime_ns: s.uptime_ns,
            num_flows: s.num_flows,
            max_flows: s.max_flows,
            seen_flows: s.seen_flows,
          },
        ],
      });
    },
    serverStatus: () => Promise.resolve(status()),
  };
}

export async function startObserverServer(observer: Observer, o: ObserverServerOptions): Promise<ObserverServer> {
  return startObserverService(agentBackend(observer, o.tls !== undefined), o);
}

/**
 * Serves `backend` as observer.Observer, with grpc.health.v1.Health (the overall status
 * and "observer.Observer" SERVING) and server reflection (grpcurl works without the .proto).
 */
export async function startObserverService(
  backend: ObserverBackend,
  o: ObserverServerOptions,
): Promise<ObserverServer> {
  const server = new grpc.Server({ 'grpc.max_concurrent_streams': 64 });

  server.addService(observerServiceDefinition(), {
    GetFlows: (call: grpc.ServerWritableStream<GetFlowsRequest, Buffer>) => backend.getFlows(call),
    GetNodes: (_call: grpc.ServerUnaryCall<object, GetNodesResponse>, cb: grpc.sendUnaryData<GetNodesResponse>) => {
      backend.getNodes().then(
        (r) => cb(null, r),
        (e: Error) => cb({ code: grpc.status.INTERNAL, details: e.message }),
      );
    },
    ServerStatus: (
      _call: grpc.ServerUnaryCall<object, ServerStatusResponse>,
      cb: grpc.sendUnaryData<ServerStatusResponse>,
    ) => {
      backend.serverStatus().then(
        (r) => cb(null, r),
        (e: Error) => cb({ code: grpc.status.INTERNAL, details: e.message }),
      );
    },
  });
  new HealthImplementation({ '': 'SERVING', 'observer.Observer': 'SERVING' }).addToServer(server);
  addLazyReflection(server);

  const addresses: string[] = [];
  if (o.socketPath) {
    mkdirSync(dirname(o.socketPath), { recursive: true });
    if (existsSync(o.socketPath)) rmSync(o.socketPath);
    try {
      await bind(server, `unix:${o.socketPath}`);
    } catch (e) {
      throw new Error(`cannot listen on ${o.socketPath}: ${(e as Error).message}; is another weir agent running?`);
    }
    chmodSync(o.socketPath, 0o660);
    addresses.push(`unix:${o.socketPath}`);
  }
  if (o.tcpAddress) {
    let port: number;
    try {
      port = await bind(server, o.tcpAddress, serverCredentials(o.tls));
    } catch (e) {
      throw new Error(`cannot listen on ${o.tcpAddress}: ${(e as Error).message}; pick a free host:port`);
    }
    addresses.push(o.tcpAddress.replace(/:\d+$/, `:${port}`));
  }
  if (addresses.length === 0) throw new Error('the flow API needs a unix socket path or a TCP address to listen on');

  return {
    addresses,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => {
          if (o.socketPath && existsSync(o.socketPath)) rmSync(o.socketPath, { force: true });
          resolve();
        });
        // Streams that follow never end by themselves: cut them after a moment.
        setTimeout(() => server.forceShutdown(), 200).unref();
      }),
  };
}
