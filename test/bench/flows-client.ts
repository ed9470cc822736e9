/**
 * A flow API client process for the flows bench: follows flows with an optional
 * destination-port filter and prints one JSON line per second with what it received
 * and what it was told it lost.
 */
import { ObserverClient } from '../../agent/flows/client.js';
import type { GetFlowsResponse } from '../../agent/flows/types.js';

const [address, port] = process.argv.slice(2);
if (!address) {
  process.stderr.write('usage: flows-client ADDRESS [DESTINATION_PORT]\n');
  process.exit(2);
}
const client = new ObserverClient(address);
let flows = 0;
let lost = 0;
const call = client.getFlows({ follow: true, whitelist: port ? [{ destination_port: [port] }] : [] });
call.on('data', (r: GetFlowsResponse) => {
  if (r.flow) flows++;
  else if (r.lost_events) lost += r.lost_events.num_events_lost;
});
call.on('error', () => undefined);
const timer = setInterval(() => process.stdout.write(`${JSON.stringify({ flows, lost })}\n`), 1000);
process.on('SIGTERM', () => {
  clearInterval(timer);
  process.stdout.write(`${JSON.stringify({ flows, lost })}\n`);
  call.cancel();
  client.close();
  process.exit(0);
});
