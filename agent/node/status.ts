/**
 * The node agent's status (`weir agent status`) on its local control socket: HTTP on a unix
 * socket only root on the node can open (mode 0600), never on the node network, because it names
 * pods and policies.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { callControl } from '../control/client.js';
import { serveControl } from '../control/server.js';

/** The control socket of an agent whose run dir is `runDir`. */
export function agentSocketPath(runDir: string): string {
  return join(runDir, 'agent.sock');
}

export interface StatusServer {
  readonly socketPath: string;
  close(): Promise<void>;
}

export async function startStatusServer(runDir: string, status: () => unknown): Promise<StatusServer> {
  const socketPath = agentSocketPath(runDir);
  const server: Server = await serveControl(socketPath, [
    { method: 'GET', path: '/status', handler: async () => status() },
  ]);
  return {
    socketPath,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
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
