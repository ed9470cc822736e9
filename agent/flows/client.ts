/**
 * A flow API client: what `weir observe` and the tests use.
 */
import * as grpc from '@grpc/grpc-js';
import { observerServiceDefinition } from './proto.js';
import type { GetFlowsRequest, GetFlowsResponse, GetNodesResponse, ServerStatusResponse } from './types.js';

type ObserverStub = grpc.Client & {
  GetFlows(
    req: GetFlowsRequest,
    md?: grpc.Metadata,
    opts?: grpc.CallOptions,
  ): grpc.ClientReadableStream<GetFlowsResponse>;
  GetNodes(
    req: object,
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, r?: GetNodesResponse) => void,
  ): grpc.ClientUnaryCall;
  ServerStatus(
    req: object,
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, r?: ServerStatusResponse) => void,
  ): grpc.ClientUnaryCall;
};

/** "unix:/path", "/path" (a unix socket) or "host:port". */
export function grpcTarget(address: string): string {
  if (address.startsWith('unix:')) return address;
  if (address.startsWith('/')) return `unix:${address}`;
  return address;
}

export class ObserverClient {
  private readonly stub: ObserverStub;

  /** `credentials`: mutual TLS for a TCP server that asks for it (the agents' listener, the relay). */
  constructor(
    readonly address: string,
    credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
    options: grpc.ChannelOptions = {},
  ) {
    const Ctor = grpc.makeGenericClientConstructor(observerServiceDefinition(), 'Observer');
    this.stub = new Ctor(grpcTarget(address), credentials, {
      ...options,
      'grpc.max_receive_message_length': 16 * 1024 * 1024,
      // A connection of its own: a paused reader elsewhere in this process must not hold
      // up this client's stream through a shared HTTP/2 connection window.
      'grpc.use_local_subchannel_pool': 1,
    }) as unknown as ObserverStub;
  }

  /** The stream of responses; each data event is one GetFlowsResponse. */
  getFlows(req: GetFlowsRequest): grpc.ClientReadableStream<GetFlowsResponse> {
    return this.stub.GetFlows(req);
  }

  /** Every response of a request that ends by itself (no follow). */
  collect(req: GetFlowsRequest, timeoutMs = 10_000): Promise<GetFlowsResponse[]> {
    return new Promise((resolve, reject) => {
      const out: GetFlowsResponse[] = [];
      const call = this.stub.GetFlows(req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs });
      call.on('data', (r: GetFlowsResponse) => out.push(r));
      call.on('error', reject);
      call.on('end', () => resolve(out));
    });
  }

  getNodes(timeoutMs = 5_000): Promise<GetNodesResponse> {
    return new Promise((resolve, reject) => {
      this.stub.GetNodes({}, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, r) =>
        err || r === undefined ? reject(err ?? new Error('empty GetNodes answer')) : resolve(r),
      );
    });
  }

  serverStatus(timeoutMs = 5_000): Promise<ServerStatusResponse> {
    return new Promise((resolve, reject) => {
      this.stub.ServerStatus({}, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, r) =>
        err || r === undefined ? reject(err ?? new Error('empty ServerStatus answer')) : resolve(r),
      );
    });
  }

  close(): void {
    this.stub.close();
  }
}
