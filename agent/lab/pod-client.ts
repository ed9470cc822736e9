/** Talking to one lab pod's agent over its unix socket. */
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import type { PodAgentResponse, ProbeOutcome, ProbeTarget } from './probe-protocol.js';

type Req = { op: 'ping' } | { op: 'probe'; targets: ProbeTarget[]; timeoutMs: number };

let nextId = 1;

export function podRequest(socketPath: string, req: Req, timeoutMs: number): Promise<PodAgentResponse> {
  return new Promise((resolve, reject) => {
    const id = nextId++;
    const conn = connect(socketPath);
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new Error(`pod agent at ${socketPath} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    conn.on('error', (err) => {
      clearTimeout(timer);
      reject(
        new Error(
          `pod agent at ${socketPath} is not reachable (${(err as NodeJS.ErrnoException).code ?? err.message}): is the lab up? try \`weir lab up\``,
        ),
      );
    });
    const lines = createInterface({ input: conn });
    lines.on('error', () => undefined); // reported by conn's handler above
    lines.once('line', (line) => {
      clearTimeout(timer);
      conn.destroy();
      resolve(JSON.parse(line) as PodAgentResponse);
    });
    conn.write(`${JSON.stringify({ id, ...req })}\n`);
  });
}

export async function probeFrom(
  socketPath: string,
  targets: ProbeTarget[],
  timeoutMs: number,
): Promise<ProbeOutcome[]> {
  const resp = await podRequest(socketPath, { op: 'probe', targets, timeoutMs }, timeoutMs + 5000);
  if ('error' in resp) throw new Error(`probe from ${socketPath} failed: ${resp.error}`);
  if (!('results' in resp)) throw new Error(`probe from ${socketPath}: unexpected answer`);
  return resp.results;
}

/** Waits until the pod agent answers a ping. */
export async function waitForPodAgent(socketPath: string, deadlineMs: number): Promise<void> {
  const end = Date.now() + deadlineMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const r = await podRequest(socketPath, { op: 'ping' }, 1000);
      if ('ok' in r) return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(
    `pod agent at ${socketPath} did not start within ${deadlineMs} ms (${last instanceof Error ? last.message : 'no answer'}); see its log next to the socket`,
  );
}
