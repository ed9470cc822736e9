/**
 * The agent's Kubernetes credentials without client-node's KubeConfig, and the agent's import
 * graph: neither the node agent nor the CLI that starts it loads client-node.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inClusterCredentials, kubeconfigCredentials, KubeCredentials } from '../../agent/sources/kubeconfig.js';
import { PolicyEventRecorder } from '../../agent/node/events.js';
import { TestApiServer } from '../apiserver/server.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

async function applied(c: {
  applyToHTTPSOptions(o: https.RequestOptions): Promise<void>;
}): Promise<https.RequestOptions> {
  const o: https.RequestOptions = {};
  await c.applyToHTTPSOptions(o);
  return o;
}

describe('Kubernetes credentials', () => {
  it('reads the in-cluster service account and re-reads its token file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weir-sa-'));
    writeFileSync(join(dir, 'ca.crt'), 'CA');
    writeFileSync(join(dir, 'token'), 'tok-1\n');
    const c = inClusterCredentials({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, dir);
    expect(c.getCurrentCluster().server).toBe('https://10.96.0.1:443');
    const o = await applied(c);
    expect(String(o.ca)).toBe('CA');
    expect(o.headers).toEqual({ Authorization: 'Bearer tok-1' });
    expect(() => inClusterCredentials({}, dir)).toThrow(/not in a pod/);
    const v6 = inClusterCredentials({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, dir);
    expect(v6.getCurrentCluster().server).toBe('https://[fd00::1]:443');
  });

  it('reads a kubeconfig: current context, inline and file material relative to the kubeconfig', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weir-kc-'));
    writeFileSync(join(dir, 'client.key'), 'KEY');
    const text = `
apiVersion: v1
kind: Config
current-context: b
clusters:
  - name: one
    cluster: { server: 'https://a.example:6443', certificate-authority-data: ${b64('CA-A')} }
  - name: two
    cluster: { server: 'https://b.example:6443', insecure-skip-tls-verify: true, tls-server-name: api }
users:
  - name: u
    user: { client-certificate-data: ${b64('CERT')}, client-key: client.key }
  - name: t
    user: { token: secret }
contexts:
  - name: a
    context: { cluster: one, user: t }
  - name: b
    context: { cluster: two, user: u }
`;
    const b = await kubeconfigCredentials(text, { baseDir: dir });
    expect(b).toBeInstanceOf(KubeCredentials);
    expect(b.getCurrentCluster()?.server).toBe('https://b.example:6443');
    const ob = await applied(b);
    expect(String(ob.cert)).toBe('CERT');
    expect(String(ob.key)).toBe('KEY');
    expect(ob.rejectUnauthorized).toBe(false);
    expect(ob.servername).toBe('api');
    expect(ob.headers).toBeUndefined();
    const a = await kubeconfigCredentials(text, { context: 'a', baseDir: dir });
    const oa = await applied(a);
    expect(String(oa.ca)).toBe('CA-A');
    expect(oa.rejectUnauthorized).toBeUndefined();
    expect(oa.headers).toEqual({ Authorization: 'Bearer secret' });
    await expect(kubeconfigCredentials(text, { context: 'nope' })).rejects.toThrow(/no context named "nope"/);
  });

  it('hands a kubeconfig with an exec plugin to client-node', async () => {
    const text = JSON.stringify({
      'current-context': 'c',
      clusters: [{ name: 'k', cluster: { server: 'https://k.example' } }],
      users: [{ name: 'e', user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: 'true' } } }],
      contexts: [{ name: 'c', context: { cluster: 'k', user: 'e' } }],
    });
    const c = await kubeconfigCredentials(text);
    expect(c).not.toBeInstanceOf(KubeCredentials);
    expect(c.getCurrentCluster()?.server).toBe('https://k.example');
  });

  it('posts an Event to the test API server with lean credentials', async () => {
    const server = new TestApiServer();
    await server.start();
    try {
      const rec = new PolicyEventRecorder(await kubeconfigCredentials(server.kubeconfig()), 'node-1');
      await rec.report([{ policy: 'x/p', field: 'spec', message: 'm' }], 'warning');
      expect(server.list('events')).toHaveLength(1);
      expect(server.list('events')[0]).toMatchObject({ reason: 'PolicyRuleWarning', involvedObject: { name: 'p' } });
    } finally {
      await server.stop();
    }
  });
});

describe("the agent's import graph", () => {
  it('loads no part of @kubernetes/client-node for the node agent or the CLI', () => {
    // A resolve hook in the child reports every module it loads from client-node.
    const hook =
      'data:text/javascript,' +
      encodeURIComponent(
        'export async function resolve(s, c, next) { const r = await next(s, c); if (r.url.includes("@kubernetes/client-node")) process.stderr.write("LOADED " + r.url + "\\n"); return r; }',
      );
    const loaded = (code: string): string[] => {
      const r = spawnSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `import { register } from 'node:module'; register(${JSON.stringify(hook)}); ${code}`,
        ],
        { encoding: 'utf8' },
      );
      if (r.status !== 0) throw new Error(r.stderr);
      return r.stderr.split('\n').filter((l) => l.startsWith('LOADED '));
    };
    // The hook sees client-node when something does load it.
    expect(loaded(`await import('@kubernetes/client-node/dist/watch.js');`).length).toBeGreaterThan(0);
    expect(
      loaded(
        `await import('./dist/agent/node/agent.js'); await import('./dist/agent/node/uninstall.js'); await import('./dist/agent/cli/main.js');`,
      ),
    ).toEqual([]);
  });
});
