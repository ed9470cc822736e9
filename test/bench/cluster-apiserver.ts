/**
 * The test API server holding a generated cluster (kube-objects.ts), in a process of its own,
 * driven over IPC by the cluster100k bench (cluster-scale.ts). Its heap holds the 100,000 Pods
 * and their encodings; kept out of the bench process, its collector's pauses cannot stop the
 * clock that times the agent.
 *
 * Messages in: `{ cmd: 'changes', count, rate, t0 }` runs label changes open loop from `t0`
 * (epoch ms): change i at t0 + i / rate gives remote pod `changedPod(i)` a label set never seen
 * before; `{ cmd: 'forget' }` drops the list encodings; `{ cmd: 'stop' }`. Messages out:
 * `{ type: 'ready', ... }`, `{ type: 'issued', at: [[i, epochMs], ...] }` (the moment each
 * change was written to the watch streams), `{ type: 'done' }`, `{ type: 'stopped' }`.
 */
import { pathToFileURL } from 'node:url';
import { TestApiServer, type KubeObject } from '../apiserver/server.js';
import { populateCluster, type ClusterShape } from './kube-objects.js';

export const NODE = 'node-0';

export interface ReadyMessage {
  type: 'ready';
  kubeconfig: string;
  counts: Record<string, number>;
  localIps: string[];
  remoteIps: string[];
}

export type ServerCommand =
  | { cmd: 'changes'; count: number; rate: number; t0: number }
  | { cmd: 'forget' }
  | { cmd: 'listBytes' }
  | { cmd: 'stop' };

/** Which remote pod change i touches: every one a different pod (7919 is prime to the count). */
export function changedPod(i: number, remote: number): number {
  return (i * 7919) % remote;
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export const epochMs = (): number => performance.timeOrigin + performance.now();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function changes(api: TestApiServer, remote: KubeObject[], c: { count: number; rate: number; t0: number }) {
  let issued = 0;
  while (issued < c.count) {
    const due = Math.min(c.count, Math.floor(((epochMs() - c.t0) / 1000) * c.rate) + 1);
    const at: Array<[number, number]> = [];
    for (; issued < due; issued++) {
      const k = changedPod(issued, remote.length);
      const p = remote[k]!;
      const labels = { ...(p.metadata.labels ?? {}), app: `app-${issued % 5}`, version: `v${issued}` };
      remote[k] = api.update({ ...p, metadata: { ...p.metadata, labels } });
      at.push([issued, epochMs()]);
    }
    if (at.length > 0) process.send!({ type: 'issued', at });
    await sleep(1);
  }
  process.send!({ type: 'done' });
}

async function main(): Promise<void> {
  const shape = JSON.parse(process.argv[2]!) as ClusterShape;
  const api = new TestApiServer({ bookmarkIntervalMs: 60_000 });
  await api.start();
  const cluster = populateCluster((o) => api.createOwned(o), shape);
  const onNode = (p: KubeObject): boolean => (p.spec as { nodeName?: string }).nodeName === NODE;
  const ip = (p: KubeObject): string => (p.status as { podIP: string }).podIP;
  const remote = cluster.pods.filter((p) => !onNode(p));
  process.on('message', (m: ServerCommand) => {
    if (m.cmd === 'changes') void changes(api, remote, m);
    else if (m.cmd === 'forget') api.forgetEncodings();
    else if (m.cmd === 'listBytes')
      process.send!({ type: 'listBytes', bytes: Object.values(api.counts.listBytes).reduce((a, b) => a + b, 0) });
    else if (m.cmd === 'stop')
      void api.stop().then(() => {
        process.send!({ type: 'stopped' });
        process.exit(0);
      });
  });
  const ready: ReadyMessage = {
    type: 'ready',
    kubeconfig: api.kubeconfig(),
    counts: cluster.counts,
    localIps: cluster.pods.filter(onNode).map(ip),
    remoteIps: remote.map(ip),
  };
  process.send!(ready);
}

if (process.send && process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`cluster API server: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
