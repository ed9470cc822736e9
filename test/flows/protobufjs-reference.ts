/**
 * A flow and its GetFlowsResponse encoded by protobufjs alone, as agent/flows/proto.ts did before
 * the flow writer (agent/flows/flow-wire.ts): the reference its bytes are checked against
 * (test/flows/flow-wire.test.ts) and the "before" it is measured beside (test/bench/flows-micro.ts).
 */
import protobuf from 'protobufjs/light.js';
import { messageType } from '../../agent/flows/proto.js';
import type { Flow } from '../../agent/flows/types.js';

export const protobufjsFlow = (f: Flow): Uint8Array =>
  messageType('Flow')
    .encode(f as unknown as protobuf.Message)
    .finish();

export function protobufjsResponse(f: Flow, nodeName: string): Buffer {
  const w = protobuf.Writer.create();
  w.uint32((1 << 3) | 2).bytes(protobufjsFlow(f));
  if (nodeName) w.uint32((1000 << 3) | 2).string(nodeName);
  w.uint32((1001 << 3) | 2)
    .fork()
    .uint32(8)
    .int64(f.time.seconds)
    .uint32(16)
    .int32(f.time.nanos)
    .ldelim();
  return Buffer.from(w.finish());
}
