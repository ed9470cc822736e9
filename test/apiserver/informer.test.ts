/**
 * The test API server against @kubernetes/client-node's own informers (makeInformer / ListWatch)
 * and typed list calls: proves the stand-in speaks the protocol the real client expects.
 */
import {
  CoreV1Api,
  KubeConfig,
  makeInformer,
  type Informer,
  type KubernetesObject,
  type ObjectCache,
} from '@kubernetes/client-node';

type CachedInformer = Informer<KubernetesObject> & ObjectCache<KubernetesObject>;
import { TestApiServer } from './server.js';

const ns = (name: string, labels: Record<string, string> = {}) => ({ kind: 'Namespace', metadata: { name, labels } });

/** Records what an informer reports, and lets a test wait for a condition on it. */
class Recorder {
  readonly events: string[] = [];
  readonly errors: unknown[] = [];
  private waiters: Array<() => void> = [];
  attach(inf: Informer<KubernetesObject>): void {
    inf.on('add', (o) => this.push(`add ${o.metadata?.name}`));
    inf.on('update', (o) => this.push(`update ${o.metadata?.name}`));
    inf.on('delete', (o) => this.push(`delete ${o.metadata?.name}`));
    inf.on('error', (e) => {
      this.errors.push(e);
      this.push('error');
    });
  }
  private push(e: string): void {
    this.events.push(e);
    for (const w of this.waiters.splice(0)) w();
  }
  async until(pred: () => boolean, what: string, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; saw: ${this.events.join(', ')}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }
  has(e: string): boolean {
    return this.events.includes(e);
  }
}

describe('test API server with client-node informers', () => {
  let server: TestApiServer;
  let kc: KubeConfig;
  let informers: CachedInformer[] = [];

  beforeEach(async () => {
    server = new TestApiServer({ bookmarkIntervalMs: 100 });
    await server.start();
    kc = new KubeConfig();
    kc.loadFromString(server.kubeconfig());
  });
  afterEach(async () => {
    for (const i of informers) await i.stop();
    informers = [];
    await server.stop();
  });

  function nsInformer(): { inf: CachedInformer; rec: Recorder } {
    const api = kc.makeApiClient(CoreV1Api);
    const inf: CachedInformer = makeInformer<KubernetesObject>(kc, '/api/v1/namespaces', () => api.listNamespace());
    const rec = new Recorder();
    rec.attach(inf);
    informers.push(inf);
    return { inf, rec };
  }

  it('lists, then streams added, modified and deleted objects', async () => {
    server.create(ns('before'));
    const { inf, rec } = nsInformer();
    await inf.start();
    await rec.until(() => rec.has('add before'), 'initial list');
    await rec.until(() => server.activeWatches('namespaces') === 1, 'watch open');
    server.create(ns('after'));
    server.update(ns('after', { team: 'a' }));
    server.delete('Namespace', 'before');
    await rec.until(() => rec.has('delete before'), 'watch events');
    expect(rec.events).toEqual(['add before', 'add after', 'update after', 'delete before']);
    expect(server.counts.list.namespaces).toBe(1);
  });

  it('relists after 410 Gone and keeps watching', async () => {
    const { inf, rec } = nsInformer();
    await inf.start();
    await rec.until(() => server.activeWatches('namespaces') === 1, 'watch open');
    server.create(ns('one'));
    await rec.until(() => rec.has('add one'), 'add one');
    server.compact();
    server.endWatches();
    await rec.until(
      () => (server.counts.list.namespaces ?? 0) === 2 && server.activeWatches('namespaces') === 1,
      'relist',
    );
    expect(server.counts.watchGone.namespaces).toBe(1);
    server.create(ns('two'));
    await rec.until(() => rec.has('add two'), 'add two after relist');
    expect(rec.errors).toHaveLength(0);
  });

  it('reports an error and stops when the connection is dropped; restarting relists and removes what was deleted meanwhile', async () => {
    server.create(ns('keep'));
    server.create(ns('gone'));
    const { inf, rec } = nsInformer();
    await inf.start();
    await rec.until(() => rec.has('add gone') && server.activeWatches('namespaces') === 1, 'initial sync');
    await server.stop();
    await rec.until(() => rec.has('error'), 'error after connection drop');
    // While the client is disconnected: a delete, and history compacted away.
    server.delete('Namespace', 'gone');
    server.compact();
    await server.start();
    // client-node stops informers on errors other than 410: the caller restarts them.
    await inf.start();
    await rec.until(() => rec.has('delete gone'), 'relist removing the deleted namespace');
    expect(rec.has('delete keep')).toBe(false);
    expect(inf.list().map((o) => o.metadata?.name)).toEqual(['keep']);
  });

  it('ends a watch cleanly after timeoutSeconds and sends bookmarks when asked', async () => {
    const res = await fetch(
      `${server.url}/api/v1/namespaces?watch=true&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion=${server.resourceVersion}`,
    );
    const text = await res.text();
    const lines = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; object: { metadata: { resourceVersion: string } } });
    expect(lines.length).toBeGreaterThanOrEqual(5);
    expect(
      lines.every((l) => l.type === 'BOOKMARK' && l.object.metadata.resourceVersion === server.resourceVersion),
    ).toBe(true);
  });

  it('pages lists with limit and continue over a consistent snapshot', async () => {
    for (const n of ['a', 'b', 'c', 'd', 'e']) server.create({ kind: 'Pod', metadata: { name: n, namespace: 'x' } });
    const api = kc.makeApiClient(CoreV1Api);
    const first = await api.listPodForAllNamespaces({ limit: 2 });
    server.create({ kind: 'Pod', metadata: { name: 'f', namespace: 'x' } });
    const names = first.items.map((p) => p.metadata?.name);
    let cont = first.metadata?._continue;
    while (cont) {
      const page = await api.listPodForAllNamespaces({ limit: 2, _continue: cont });
      names.push(...page.items.map((p) => p.metadata?.name));
      expect(page.metadata?.resourceVersion).toBe(first.metadata?.resourceVersion);
      cont = page.metadata?._continue;
    }
    expect(names).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('serves writes over HTTP with Kubernetes status codes', async () => {
    const api = kc.makeApiClient(CoreV1Api);
    await api.createNamespace({ body: { metadata: { name: 'w' } } });
    await expect(api.createNamespace({ body: { metadata: { name: 'w' } } })).rejects.toMatchObject({ code: 409 });
    // client-node sends a JSON patch (RFC 6902) unless told otherwise.
    await api.patchNamespace({ name: 'w', body: [{ op: 'add', path: '/metadata/labels', value: { a: 'b' } }] });
    expect(server.get('Namespace', 'w')?.metadata.labels).toEqual({ a: 'b' });
    await api.deleteNamespace({ name: 'w' });
    await expect(api.readNamespace({ name: 'w' })).rejects.toMatchObject({ code: 404 });
  });
});
