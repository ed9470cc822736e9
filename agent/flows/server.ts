/**
 * The flow API's gRPC server: a unix socket by default, TCP when asked.
 */
import { mkdirSync, rmSync, existsSync, chmodSync } from 'node:fs';
import { dirname } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { nsToTimestamp } from './clock.js';
import { FilterError } from './filter.js';
import { encodeFlowResponse, encodeLostResponse, observerServiceDefinition } from './proto.js';
import { weirVersion } from './assets.js';
import type { Observer } from './observer.js';
import type { FlowSink, SinkItem } from './subscription.js';
import { LostEventSource, type GetFlowsRequest, type ServerStatusResponse } from './types.js';

export interface ObserverServerOptions {
  /** Unix socket path; empty string for none. */
  socketPath?: string;
  /** "host:port" for a TCP listener (opt-in; plaintext). */
  tcpAddress?: string;
}

export interface ObserverServer {
  /** What it listens on: "unix:/run/weir/observer.sock", "127.0.0.1:4245". */
  addresses: string[];
  close(): Promise<void>;
}

function bind(server: grpc.Server, address: string): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(err) : resolve(port),
    ),
  );
}

/**
 * Messages handed to gRPC but not yet written to the connection, per client. The
 * stream's own buffer says "full" after 16 messages, which costs a round trip through
 * the event loop every 16 flows; a deeper window keeps a fast client streaming at
 * full speed while still bounding what a slow client can hold (the rest waits in the
 * subscription's bounded queue, and beyond that is dropped and counted).
 */
const MAX_IN_FLIGHT = 256;

function sinkFor(call: grpc.ServerWritableStream<GetFlowsRequest, Buffer>, nodeName: string): FlowSink {
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

export async function startObserverServer(observer: Observer, o: ObserverServerOptions): Promise<ObserverServer> {
  const server = new grpc.Server({ 'grpc.max_concurrent_streams': 64 });
  const version = weirVersion();

  server.addService(observerServiceDefinition(), {
    GetFlows: (call: grpc.ServerWritableStream<GetFlowsRequest, Buffer>) => {
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
    ServerStatus: (
      _call: grpc.ServerUnaryCall<object, ServerStatusResponse>,
      cb: grpc.sendUnaryData<ServerStatusResponse>,
    ) => {
      const s = observer.status();
      cb(null, {
        num_flows: s.numFlows,
        max_flows: s.maxFlows,
        seen_flows: s.seenFlows,
        uptime_ns: Number(s.uptimeNs),
        version,
        lost_events: s.lostEvents,
        client_dropped_flows: s.clientDroppedFlows,
        connected_clients: s.connectedClients,
        node_name: observer.nodeName,
      });
    },
  });

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
      port = await bind(server, o.tcpAddress);
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
