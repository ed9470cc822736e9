/** Client of the agent's control API (agent/control/server.ts). */
import { request } from 'node:http';
import { createInterface } from 'node:readline';

export class ControlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ControlError';
  }
}

/**
 * Calls one endpoint; progress lines go to `onProgress`; resolves with the result or rejects
 * with the agent's error message.
 */
export function callControl<T>(
  socketPath: string,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  onProgress?: (line: string) => void,
  timeoutMs = 300_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath, method, path, headers: { 'content-type': 'application/json' }, timeout: timeoutMs },
      (res) => {
        let settled = false;
        const lines = createInterface({ input: res });
        lines.on('line', (line) => {
          if (line.trim() === '') return;
          const msg = JSON.parse(line) as { progress?: string; result?: T; error?: string };
          if (msg.progress !== undefined) onProgress?.(msg.progress);
          else if (msg.error !== undefined) {
            settled = true;
            reject(new ControlError(msg.error));
          } else if ('result' in msg) {
            settled = true;
            resolve(msg.result as T);
          }
        });
        lines.on('close', () => {
          if (!settled)
            reject(new ControlError(`the agent closed the connection to ${path} without an answer; see its log`));
        });
      },
    );
    req.on('timeout', () =>
      req.destroy(new ControlError(`the agent did not answer ${path} within ${timeoutMs / 1000} s`)),
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err instanceof ControlError) reject(err);
      else
        reject(
          new ControlError(
            `cannot reach the agent at ${socketPath} (${err.code ?? err.message}); is the lab up? run \`weir lab up --cluster FILE\``,
          ),
        );
    });
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}
