/**
 * The node agent's status (`weir agent status`) on its local control socket: HTTP on a unix
 * socket only root on the node can open (mode 0600), never on the node network, because it names
 * pods and policies.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { callControl } from '../control/client.js';
import { serveOffLoop, type OffLoopHost } from '../offloop.js';

/** The control socket of an agent whose run dir is `runDir`. */
export function agentSocketPath(runDir: string): string {
  return join(runDir, 'agent.sock');
}

export interface StatusServer {
  readonly socketPath: string;
  /** Hands the current status to the socket's thread, to answer with while the main loop is busy. */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Serves `GET /status` from the off-loop thread (agent/offloop.ts): the main loop computes the
 * answer; while it is busy longer than the deadline (a large policy compiling), the last status
 * is served, so `weir agent status` never waits on a compile.
 */
export async function startStatusServer(
  runDir: string,
  status: () => unknown,
  opts: { deadlineMs?: number; host?: OffLoopHost } = {},
): Promise<StatusServer> {
  const socketPath = agentSocketPath(runDir);
  const server = await serveOffLoop(
    opts.host,
    { socketPath },
    [
      {
        path: '/status',
        kind: 'ask',
        answer: () => ({ contentType: 'application/x-ndjson', body: `${JSON.stringify({ result: status() })}\n` }),
      },
    ],
    {
      inUse: `the agent control socket ${socketPath} is in use`,
      notFound: {
        contentType: 'application/x-ndjson',
        body: `${JSON.stringify({ error: 'no such endpoint; known: GET /status' })}\n`,
      },
      ...(opts.deadlineMs !== undefined ? { deadlineMs: opts.deadlineMs } : {}),
    },
  );
  return { socketPath, refresh: () => server.refresh(), close: () => server.close() };
}

/** Reads the status of the agent whose run dir is `runDir`. */
export async function readAgentStatus<T>(runDir: string, timeoutMs = 5000): Promise<T> {
  const socketPath = agentSocketPath(runDir);
  if (!existsSync(socketPath))
    throw new Error(
      `no agent control socket at ${socketPath}: is weir agent running on this node with --run-dir ${runDir}? (pass --run-dir or --config)`,
    );
  try {
    return await callControl<T>(socketPath, 'GET', '/status', undefined, undefined, timeoutMs);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(
      `the agent at ${socketPath} did not answer (${code ?? (err instanceof Error ? err.message : String(err))}); the socket is root's only`,
    );
  }
}
