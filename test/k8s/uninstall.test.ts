/**
 * The decision a stopping agent takes on SIGTERM, against the test API server: only a DaemonSet
 * that is gone or being deleted means uninstall; everything else (present, replaced, no owner,
 * unreadable, unreachable, slow) keeps the programs attached. When the API refuses the agent at
 * SIGTERM (helm uninstall deletes its RBAC and ServiceAccount too), a deletion the agent's watch of
 * its DaemonSet saw decides.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { decideOnStop, OwnerWatch } from '../../agent/node/uninstall.js';
import { TestApiServer, type KubeObject } from '../apiserver/server.js';

const daemonSet = (): KubeObject => ({
  kind: 'DaemonSet',
  metadata: { name: 'weir', namespace: 'kube-system' },
  spec: { selector: { matchLabels: { app: 'weir' } }, template: { metadata: { labels: { app: 'weir' } } } },
});
const agentPod = (name: string, owner?: KubeObject): KubeObject => ({
  kind: 'Pod',
  metadata: {
    name,
    namespace: 'kube-system',
    labels: { app: 'weir' },
    ...(owner
      ? {
          ownerReferences: [
            {
              apiVersion: 'apps/v1',
              kind: 'DaemonSet',
              name: owner.metadata.name,
              uid: owner.metadata.uid,
              controller: true,
            },
          ],
        }
      : {}),
  },
  spec: { nodeName: 'node-1', hostNetwork: true, containers: [{ name: 'agent', image: 'weir/agent' }] },
});

function kubeConfigFor(api: TestApiServer | string): KubeConfig {
  const kc = new KubeConfig();
  const server = typeof api === 'string' ? api : api.url;
  kc.loadFromString(
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 't', cluster: { server, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 't', user: { token: 't' } }],
      contexts: [{ name: 't', context: { cluster: 't', user: 't' } }],
      'current-context': 't',
    }),
  );
  return kc;
}

describe('uninstall or restart: the decision on SIGTERM', () => {
  const api = new TestApiServer();
  let kc: KubeConfig;
  const decide = (podName: string, timeoutMs?: number) =>
    decideOnStop({ kubeConfig: kc, podName, podNamespace: 'kube-system', ...(timeoutMs ? { timeoutMs } : {}) });

  beforeAll(async () => {
    await api.start();
    kc = kubeConfigFor(api);
  });
  afterAll(() => api.stop());

  it('keeps everything while the DaemonSet is present (upgrade, restart, eviction)', async () => {
    const ds = api.create(daemonSet());
    api.create(agentPod('weir-a', ds));
    expect(await decide('weir-a')).toEqual({
      cleanup: false,
      reason: 'DaemonSet kube-system/weir is present (upgrade, restart or eviction)',
    });
  });

  it('cleans up when the DaemonSet is being deleted (foreground deletion)', async () => {
    const ds = api.get('DaemonSet', 'weir', 'kube-system')!;
    api.update({ ...ds, metadata: { ...ds.metadata, deletionTimestamp: new Date().toISOString() } });
    expect(await decide('weir-a')).toEqual({ cleanup: true, reason: 'DaemonSet kube-system/weir is being deleted' });
  });

  it('cleans up when the DaemonSet is gone (helm uninstall: background deletion)', async () => {
    api.delete('DaemonSet', 'weir', 'kube-system');
    expect(await decide('weir-a')).toEqual({ cleanup: true, reason: 'DaemonSet kube-system/weir is gone' });
  });

  it('keeps everything when a new DaemonSet of the same name replaced it (reinstall)', async () => {
    const again = api.create(daemonSet());
    const owner = (api.get('Pod', 'weir-a', 'kube-system')!.metadata.ownerReferences as Array<{ uid: string }>)[0]!;
    expect(again.metadata.uid).not.toBe(owner.uid);
    expect(await decide('weir-a')).toMatchObject({
      cleanup: false,
      reason: expect.stringMatching(/^DaemonSet kube-system\/weir was replaced by a new one/) as string,
    });
  });

  it('keeps everything when it cannot tell: no pod name, no owner, no pod', async () => {
    expect((await decide('')).cleanup).toBe(false);
    api.create(agentPod('bare'));
    expect(await decide('bare')).toEqual({
      cleanup: false,
      reason: 'pod kube-system/bare is not owned by a DaemonSet',
    });
    expect(await decide('missing')).toEqual({
      cleanup: false,
      reason: 'could not read pod kube-system/missing (HTTP 404)',
    });
  });

  it('keeps everything when the API server is down or does not answer', async () => {
    const gone = api.get('DaemonSet', 'weir', 'kube-system')!;
    api.delete('DaemonSet', 'weir', 'kube-system');
    await api.stop();
    const down = await decide('weir-a');
    expect(down.cleanup).toBe(false);
    expect(down.reason).toMatch(/^could not read pod kube-system\/weir-a/);
    await api.start();
    expect((await decide('weir-a')).cleanup).toBe(true); // the same question, answered: gone
    api.create(gone);
    // A server that accepts connections and never answers.
    const held: Socket[] = [];
    const silent: Server = createServer((s) => held.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as { port: number }).port;
    const t0 = Date.now();
    const slow = await decideOnStop({
      kubeConfig: kubeConfigFor(`http://127.0.0.1:${port}`),
      podName: 'weir-a',
      podNamespace: 'kube-system',
      timeoutMs: 300,
    });
    expect(slow).toEqual({ cleanup: false, reason: 'the API server did not answer within 300 ms' });
    expect(Date.now() - t0).toBeLessThan(2000);
    for (const s of held) s.destroy();
    await new Promise((r) => silent.close(r));
  });
});

describe('uninstall while the API refuses the agent: the watch of its DaemonSet decides', () => {
  const api = new TestApiServer();
  let kc: KubeConfig;
  let watch: OwnerWatch;
  const lookup = () => ({ kubeConfig: kc, podName: 'weir-w', podNamespace: 'kube-system' });
  const until = async (pred: () => boolean, what: string): Promise<void> => {
    const deadline = Date.now() + 5000;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  beforeAll(async () => {
    await api.start();
    kc = kubeConfigFor(api);
    const ds = api.create(daemonSet());
    api.create(agentPod('weir-w', ds));
    watch = new OwnerWatch(lookup(), () => undefined, 100);
    watch.start();
    await until(() => api.activeWatches('daemonsets') === 1, 'the DaemonSet watch');
  });
  afterAll(async () => {
    watch.stop();
    await api.stop();
  });

  it('keeps everything when the API refuses and no deletion was seen', async () => {
    api.forbid();
    expect(watch.deletionSeen).toBeUndefined();
    expect(await decideOnStop({ ...lookup(), watch })).toEqual({
      cleanup: false,
      reason: 'could not read pod kube-system/weir-w (HTTP 403)',
    });
    api.forbid(false);
  });

  it('sees a deletionTimestamp, and a cleared one', async () => {
    const ds = api.get('DaemonSet', 'weir', 'kube-system')!;
    api.update({ ...ds, metadata: { ...ds.metadata, deletionTimestamp: new Date().toISOString() } });
    await until(() => watch.deletionSeen !== undefined, 'the deletionTimestamp');
    expect(watch.deletionSeen).toBe('DaemonSet kube-system/weir is being deleted (seen by the watch)');
    api.update(ds);
    await until(() => watch.deletionSeen === undefined, 'the update');
  });

  it('cleans up when the DaemonSet was seen deleted and the API then refuses the agent', async () => {
    api.delete('DaemonSet', 'weir', 'kube-system');
    api.forbid(); // ClusterRoleBinding and ServiceAccount deleted right after
    await until(() => watch.deletionSeen !== undefined, 'the deletion');
    expect(await decideOnStop({ ...lookup(), watch })).toEqual({
      cleanup: true,
      reason:
        'DaemonSet kube-system/weir was deleted (seen by the watch) (could not read pod kube-system/weir-w (HTTP 403))',
    });
    // A fresh answer wins over the watch: a reinstalled DaemonSet of the same name keeps everything.
    api.forbid(false);
    api.create(daemonSet());
    expect((await decideOnStop({ ...lookup(), watch })).cleanup).toBe(false);
  });
});
