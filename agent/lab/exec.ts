/** Running the system tools the lab drives (iproute2, nsenter), with errors that show what failed. */
import { execFile, spawn } from 'node:child_process';

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly stderr: string,
    readonly code: number | null,
  ) {
    super(`${command} failed${code === null ? '' : ` (exit ${code})`}: ${stderr.trim() || 'no output'}`);
    this.name = 'CommandError';
  }
}

/** Runs a command, resolves with stdout, rejects with a CommandError carrying stderr. */
export function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const code =
          typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === 'number'
            ? (err as unknown as { code: number }).code
            : null;
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          reject(
            new CommandError(
              cmd,
              `${cmd} is not installed: run \`make deps\` (it installs iproute2 and util-linux)`,
              null,
            ),
          );
        } else reject(new CommandError(`${cmd} ${args.join(' ')}`, stderr || err.message, code));
        return;
      }
      resolve(stdout);
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/**
 * Runs many iproute2 commands in one process (`ip -batch -`). With `force`, failures of single
 * lines (an object that is already gone) do not stop the others; the errors are returned.
 */
export async function ipBatch(lines: string[], opts: { netns?: string; force?: boolean } = {}): Promise<string[]> {
  if (lines.length === 0) return [];
  const args = [...(opts.netns ? ['-n', opts.netns] : []), ...(opts.force ? ['-force'] : []), '-batch', '-'];
  try {
    await run('ip', args, `${lines.join('\n')}\n`);
    return [];
  } catch (err) {
    if (opts.force && err instanceof CommandError) return err.stderr.split('\n').filter((l) => l.trim() !== '');
    throw err;
  }
}

/** Starts a long-lived process inside a network namespace (nsenter keeps bpffs visible, unlike `ip netns exec`). */
export function spawnInNetns(netns: string, argv: string[], logFd: number): number {
  const child = spawn('nsenter', [`--net=/var/run/netns/${netns}`, '--', ...argv], {
    detached: true,
    stdio: ['ignore', logFd, logFd],
  });
  child.unref();
  if (child.pid === undefined)
    throw new Error(`could not start ${argv[0]} in network namespace ${netns}: is nsenter (util-linux) installed?`);
  return child.pid;
}
