/**
 * observer.proto as protobufjs JSON (agent/flows/observer.json), which the flow API loads
 * instead of parsing the .proto at every start (`weir observe` starts faster with the
 * parser-less protobufjs/light). The .proto stays the source: after changing it, run
 * `node dist/agent/flows/proto-json.js` (test/flows/wire.test.ts fails while the two differ).
 */
import { writeFileSync } from 'node:fs';
import protobuf from 'protobufjs';
import { assetPath } from './assets.js';

export const PROTO_FILE = 'agent/flows/observer.proto';
export const PROTO_JSON_FILE = 'agent/flows/observer.json';

/** The .proto parsed, as JSON text. */
export function protoJsonText(): string {
  const root = new protobuf.Root().loadSync(assetPath(PROTO_FILE), { keepCase: true });
  root.resolveAll();
  return `${JSON.stringify(root.toJSON(), null, 1)}\n`;
}

if (process.argv[1] !== undefined && /proto-json\.js$/.test(process.argv[1])) {
  writeFileSync(assetPath(PROTO_JSON_FILE), protoJsonText());
  process.stdout.write(`wrote ${PROTO_JSON_FILE}\n`);
}
