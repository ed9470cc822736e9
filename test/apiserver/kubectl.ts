/**
 * Real kubectl (`make tools` puts v1.34 in .tools/bin) against a test API server: every call is a
 * kubectl process with kubectl's default flags, a kubeconfig pointing at the server and a cache
 * directory of its own (so no discovery or OpenAPI answer of an earlier server is reused).
 * Calls are asynchronous: the server usually runs in the same process as the test.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';

export const KUBECTL = resolve('.tools/bin/kubectl');

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class Kubectl {
  private readonly dir = mkdtempSync(join(tmpdir(), 'weir-kubectl-'));
  private readonly kubeconfig = join(this.dir, 'kubeconfig');
  private readonly children = new Set<ChildProcess>();

  /** `kubeconfig`: the server's kubeconfig text (TestApiServer.kubeconfig()). */
  constructor(kubeconfig: string) {
    if (!existsSync(KUBECTL)) throw new Error(`${KUBECTL} is missing: run 'make tools' first`);
    writeFileSync(this.kubeconfig, kubeconfig);
  }

  private argv(args: string[]): string[] {
    return [`--kubeconfig=${this.kubeconfig}`, `--cache-dir=${join(this.dir, 'cache')}`, ...args];
  }

  /** Runs kubectl to the end; `input` goes to its standard input. Never throws on a non-zero exit. */
  run(args: string[], input?: string): Promise<KubectlResult> {
    return new Promise((done, fail) => {
      const child = execFile(KUBECTL, this.argv(args), { timeout: 60_000 }, (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') fail(err);
        else done({ code: err ? (err.code as number) : 0, stdout, stderr });
      });
      child.stdin?.end(input ?? '');
    });
  }

  /** Runs kubectl and returns its output; throws with kubectl's error if it fails. */
  async ok(args: string[], input?: string): Promise<string> {
    const r = await this.run(args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  }

  /** `kubectl apply -f -` of these objects as one YAML stream. */
  apply(objects: object[], extra: string[] = []): Promise<string> {
    return this.ok(['apply', '-f', '-', ...extra], objects.map((o) => stringify(o)).join('---\n'));
  }

  /** `kubectl delete -f -` of these objects. */
  delete(objects: object[]): Promise<string> {
    return this.ok(['delete', '-f', '-'], objects.map((o) => stringify(o)).join('---\n'));
  }

  /** `kubectl get ... -o json`, parsed. */
  async getJson<T = Record<string, unknown>>(args: string[]): Promise<T> {
    return JSON.parse(await this.ok(['get', ...args, '-o', 'json'])) as T;
  }

  /**
   * A long-running kubectl (e.g. `get --watch`): its output so far, and stop(). Stopped by pid,
   * also by close().
   */
  start(args: string[]): { output: () => string; stop: () => void } {
    const child = spawn(KUBECTL, this.argv(args), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const stop = (): void => {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid);
      this.children.delete(child);
    };
    return { output: () => out, stop };
  }

  close(): void {
    for (const c of this.children) if (c.pid !== undefined && c.exitCode === null) process.kill(c.pid);
    this.children.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Splits kubectl's stream of pretty-printed JSON documents (`get --watch -o json`). */
export function jsonStream<T = unknown>(text: string): T[] {
  const out: T[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === '{') {
      if (depth++ === 0) start = i;
    } else if (ch === '}' && --depth === 0) out.push(JSON.parse(text.slice(start, i + 1)) as T);
  }
  return out;
}
