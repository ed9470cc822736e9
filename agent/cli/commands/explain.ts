/**
 * `weir policy explain`, the work itself: the verdict for one connection, or the truth table
 * of every pod pair, computed offline from manifests by the same compiler the agent runs.
 * Loaded by agent/cli/commands/policy.ts only when the command runs.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { InvalidArgumentError } from 'commander';
import type { L4Protocol } from '../../desired.js';
import { PolicyEngine } from '../../policy/engine.js';
import { explain, formatExplanation } from '../../policy/explain.js';
import { formatProblem } from '../../policy/compiled.js';
import { formatTruthTable, policyMatrix } from '../../policy/matrix.js';
import { loadManifests, parseManifests } from '../../store/manifests.js';
import type { KubeObject, Pod, Service } from '../../store/types.js';
import { resolvedPorts, selectsPod } from '../../services/endpointslices.js';

export interface ExplainOptions {
  from?: string;
  to?: string;
  /** A Service of the manifests: each backend pod's verdict is explained. */
  toService?: string;
  /** A number, or a container port name resolved against the destination pod. */
  port: number | string;
  namespace?: string;
  protocol: L4Protocol;
  filename: string[];
  matrix?: boolean;
  output: 'text' | 'json';
  podCidr?: string[];
}

/** "pod" -> "NAMESPACE/pod" (default namespace "default", as kubectl); "ns/pod" and IP addresses unchanged. */
export function qualifyPod(v: string | undefined, namespace: string | undefined): string | undefined {
  if (v === undefined || v.includes('/') || isIP(v) !== 0) return v;
  return `${namespace ?? 'default'}/${v}`;
}

export function runExplain(
  opts: ExplainOptions,
  out: (s: string) => void,
  err: (s: string) => void,
  stdin: () => string = () => readFileSync(0, 'utf8'),
): number {
  const engine = new PolicyEngine(opts.podCidr ? { clusterPodCIDRs: opts.podCidr } : {});
  const stdinCount = opts.filename.filter((f) => f === '-').length;
  if (stdinCount > 1) throw new InvalidArgumentError('-f - (standard input) can be given once');
  const objects = opts.filename.flatMap((f) =>
    f === '-' ? parseManifests(stdin(), 'standard input') : loadManifests([f]),
  );
  engine.upsertAll(objects);
  for (const p of engine.errors()) err(`error: ${formatProblem(p)}\n`);
  for (const p of engine.warnings()) err(`warning: ${formatProblem(p)}\n`);
  if (opts.matrix) {
    if (typeof opts.port !== 'number')
      throw new InvalidArgumentError(`--matrix needs a port number: "${opts.port}" names a different port on each pod`);
    const m = policyMatrix(engine, opts.port, opts.protocol);
    out(opts.output === 'json' ? `${JSON.stringify(m, null, 2)}\n` : `${formatTruthTable(m)}\n`);
    return 0;
  }
  const from = qualifyPod(opts.from, opts.namespace);
  if (opts.toService !== undefined) return explainService(engine, objects, from, opts, out);
  const to = qualifyPod(opts.to, opts.namespace);
  if (!from || !to)
    throw new InvalidArgumentError('--from POD and --to POD are required (or use --matrix for every pair)');
  let port: number;
  if (typeof opts.port === 'number') port = opts.port;
  else {
    const dst = engine.getPod(to)?.pod;
    if (!dst)
      throw new InvalidArgumentError(
        `--port ${opts.port} is a port name: --to must be a pod of the manifests, not ${to}`,
      );
    const named = dst.ports.find((p) => p.name === opts.port && (p.protocol ?? 'TCP') === opts.protocol);
    if (!named) {
      const names = dst.ports.filter((p) => p.name).map((p) => `${p.name} (${p.containerPort}/${p.protocol ?? 'TCP'})`);
      throw new InvalidArgumentError(
        `pod ${to} has no ${opts.protocol} container port named "${opts.port}"${names.length ? `; its named ports: ${names.join(', ')}` : ''}`,
      );
    }
    port = named.containerPort;
  }
  const e = explain(engine, { from, to, port, protocol: opts.protocol });
  out(opts.output === 'json' ? `${JSON.stringify(e, null, 2)}\n` : `${formatExplanation(e)}\n`);
  return e.allowed ? 0 : 2;
}

/**
 * `--to-service`: the Service's port (by number or name) and its backends as the EndpointSlice
 * controller would make them from its selector (pods of its namespace with its labels, the
 * targetPort resolved per pod), then each backend explained as a connection to the pod and the
 * port the datapath translates to: egress of --from and ingress of the backend.
 */
function explainService(
  engine: PolicyEngine,
  objects: KubeObject[],
  from: string | undefined,
  opts: ExplainOptions,
  out: (s: string) => void,
): number {
  if (!from) throw new InvalidArgumentError('--from POD is required with --to-service');
  if (opts.to !== undefined) throw new InvalidArgumentError('--to and --to-service exclude each other');
  const key = qualifyPod(opts.toService, opts.namespace)!;
  const svc = objects.find((o): o is Service => o.kind === 'Service' && `${o.namespace}/${o.name}` === key);
  if (!svc) throw new InvalidArgumentError(`--to-service ${key}: no such Service in the manifests`);
  const sp = svc.ports.find(
    (p) =>
      p.protocol === opts.protocol && (typeof opts.port === 'number' ? p.port === opts.port : p.name === opts.port),
  );
  if (!sp)
    throw new InvalidArgumentError(
      `Service ${key} has no ${opts.protocol} port ${String(opts.port)}; its ports: ${svc.ports.map((p) => `${p.name ? `${p.name}:` : ''}${p.port}/${p.protocol}`).join(', ') || 'none'}`,
    );
  const pods = objects.filter((o): o is Pod => o.kind === 'Pod' && selectsPod(svc, o));
  const backends = pods.flatMap((pod) => {
    const port = resolvedPorts({ ...svc, ports: [sp] }, pod)[0]?.port;
    if (port === undefined) return [];
    return [
      {
        pod: `${pod.namespace}/${pod.name}`,
        port,
        explanation: explain(engine, { from, to: `${pod.namespace}/${pod.name}`, port, protocol: opts.protocol }),
      },
    ];
  });
  const allowed = backends.length > 0 && backends.every((b) => b.explanation.allowed);
  if (opts.output === 'json') {
    out(`${JSON.stringify({ service: key, port: sp.port, protocol: sp.protocol, allowed, backends }, null, 2)}\n`);
  } else {
    const head = `${from} -> Service ${key} port ${sp.port}/${sp.protocol}${sp.name ? ` (${sp.name})` : ''}: ${backends.length} backend${backends.length === 1 ? '' : 's'}${backends.length === 0 ? ' (no pod matches its selector with that port: the connection is dropped, SERVICE_BACKEND_NOT_FOUND)' : ''}`;
    out(
      `${[head, ...backends.map((b) => `\nbackend ${b.pod} port ${b.port}:\n${formatExplanation(b.explanation)}`)].join('\n')}\n`,
    );
  }
  return allowed ? 0 : 2;
}
