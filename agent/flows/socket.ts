/**
 * Where the flow API listens, and how `weir observe` finds it without flags.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** The node agent's flow API socket. */
export const AGENT_OBSERVER_SOCKET = '/run/weir/observer.sock';
/** The lab's run directory (WEIR_LAB_RUN_DIR overrides) and its flow API socket inside it. */
export const LAB_RUN_DIR = '/run/weir/lab';
export const OBSERVER_SOCKET_NAME = 'observer.sock';

export function labObserverSocket(runDir: string): string {
  return join(runDir, OBSERVER_SOCKET_NAME);
}

/** Candidate addresses in the order `weir observe` tries them. */
export function observerCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  if (env.WEIR_OBSERVER_ADDRESS) out.push(env.WEIR_OBSERVER_ADDRESS);
  if (env.WEIR_LAB_RUN_DIR) out.push(labObserverSocket(env.WEIR_LAB_RUN_DIR));
  out.push(labObserverSocket(LAB_RUN_DIR), AGENT_OBSERVER_SOCKET);
  return out;
}

/**
 * The flow API address to use: the explicit one, else the first candidate socket that
 * exists (a host:port candidate is taken as is). Throws an error saying what to do.
 */
export function findObserverAddress(
  explicit?: string,
  env: NodeJS.ProcessEnv = process.env,
  candidates = observerCandidates(env),
): string {
  if (explicit) return explicit;
  for (const c of candidates) {
    const path = c.startsWith('unix:') ? c.slice(5) : c;
    if (!path.startsWith('/')) return c;
    if (existsSync(path)) return path;
  }
  throw new Error(
    `no weir flow API found (looked for ${candidates.join(', ')}): start a lab with \`weir lab up\`, ` +
      'run the agent on this node, or pass --server ADDRESS',
  );
}
