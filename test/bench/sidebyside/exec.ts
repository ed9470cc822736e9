/** Running the tools of the side-by-side bench: every command has a deadline, every server a pid. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';

export interface RunOptions {
  /** Milliseconds before the command is killed (it then counts as failed). */
  timeoutMs?: number;
  input?: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; rejects with its stderr when it fails or overruns. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeout = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout, killSignal: 'SIGKILL', maxBuffer: 64 * 2 ** 20 },
      (err, stdout, stderr) => {
        if (err) {
          const why = err.killed ? `did not finish within ${timeout} ms` : `failed: ${stderr.trim() || err.message}`;
          reject(new Error(`${cmd} ${args.join(' ')} ${why}`));
          return;
        }
        resolve({ stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** The argv that runs `cmd` inside the named network namespace (bpffs is not needed by these tools). */
export function inNetns(netns: string, cmd: string, args: string[]): [string, string[]] {
  return ['ip', ['netns', 'exec', netns, cmd, ...args]];
}

export function runIn(netns: string, cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const [c, a] = inNetns(netns, cmd, args);
  return run(c, a, opts);
}

/** A long-running server started by the bench; `stop()` ends exactly this process. */
export interface Server {
  pid: number;
  stop(): Promise<void>;
}

/**
 * Starts a server in a namespace and resolves once `ready` printed (or after `settleMs` when the
 * tool prints nothing useful). `ip netns exec` execs the tool, so the pid is the server's own.
 */
export function startServer(
  netns: string,
  cmd: string,
  args: string[],
  ready: { pattern?: RegExp; settleMs?: number } = {},
): Promise<Server> {
  const [c, a] = inNetns(netns, cmd, args);
  const child: ChildProcess = spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid;
  if (pid === undefined) return Promise.reject(new Error(`could not start ${cmd} in ${netns}`));
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  const server: Server = {
    pid,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(
      () =>
        ready.pattern ? fail(new Error(`${cmd} in ${netns} did not become ready: ${out.trim()}`)) : resolve(server),
      ready.pattern ? 10_000 : (ready.settleMs ?? 300),
    );
    const fail = (err: Error): void => {
      clearTimeout(timer);
      void server.stop().then(() => reject(err));
    };
    const onData = (d: Buffer): void => {
      if (out.length < 65_536) out += d.toString();
      if (ready.pattern?.test(out)) {
        clearTimeout(timer);
        resolve(server);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) =>
      fail(new Error(`${cmd} in ${netns} exited (${code}) before it was ready: ${out.trim()}`)),
    );
  });
}
