/**
 * RBAC revoked under a running agent (root, kernel: the agent loads its datapath). The test API
 * server answers 403 for pods from some moment on; the agent keeps enforcing what it has but is
 * no longer ready — /readyz answers 503 with the refused verb and resource — and posts one
 * Warning Event naming the missing permission. When the permission is back, it is ready again.
 * Its status is on its control socket only: the health port answers /healthz and /readyz.
 *
 * @requires root
 */
import { KubeConfig } from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { NodeAgent, type NodeAgentStatus } from '../../agent/node/agent.js';
import { DEFAULT_CONFIG } from '../../agent/node/config.js';
import { createLogger } from '../../agent/node/log.js';
import { readAgentStatus } from '../../agent/node/status.js';
import { TestApiServer } from '../apiserver/server.js';

const CLI = resolve('dist/agent/cli/main.js');

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('an agent whose RBAC is revoked (root)', () => {
  const api = new TestApiServer({ host: '127.0.0.1', bookmarkIntervalMs: 500 });
  const dir = mkdtempSync(join(tmpdir(), 'wk8-forbid-'));
  const pinRoot = `/sys/fs/bpf/wk8-forbid-${randomBytes(3).toString('hex')}`;
  const logs: string[] = [];
  let agent: NodeAgent;
  let base = '';

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('the agent loads BPF programs: run this test as root');
    await api.start();
    api.create({ kind: 'Namespace', metadata: { name: 'x' } });
    api.create({ kind: 'Node', metadata: { name: 'node-1' }, spec: { podCIDRs: ['10.250.1.0/24'] } });
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromString(api.kubeconfig());
    agent = await NodeAgent.start({
      config: {
        ...DEFAULT_CONFIG,
        nodeName: 'node-1',
        pinRoot,
        runDir: join(dir, 'run'),
        healthHost: '127.0.0.1',
        healthPort: 0,
        metricsPort: 0,
        watchTimeoutSeconds: 30,
      },
      kubeConfig,
      log: createLogger('debug', (l) => logs.push(l)),
      observability: false,
    });
    base = `http://127.0.0.1:${agent.healthPort}`;
    await until('first readiness', async () => ((await fetch(`${base}/readyz`)).status === 200 ? true : undefined));
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    await api.stop().catch(() => undefined);
    rmSync(pinRoot, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
    if (process.env.WEIR_E2E_LOGS) process.stderr.write(logs.join(''));
  });

  it('serves /healthz and /readyz on the health port, and its status only on the control socket', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const statusz = await fetch(`${base}/statusz`);
    expect(statusz.status).toBe(404);
    expect(await statusz.text()).not.toMatch(/node-1|policy/);
    const s = await readAgentStatus<NodeAgentStatus>(join(dir, 'run'));
    expect(s).toMatchObject({ node: 'node-1', ready: true, forbidden: [] });
    // Asynchronously: the agent runs in this process and must answer meanwhile.
    const { stdout: out } = await promisify(execFile)(process.execPath, [
      CLI,
      'agent',
      'status',
      `--run-dir=${join(dir, 'run')}`,
    ]);
    expect(out).toMatch(/ready: +yes/);
  });

  it('on a 403 for pods: /readyz 503 naming verb and resource, one Event naming the permission; ready again once allowed', async () => {
    api.forbidResource('pods');
    const reason = await until('readiness going false', async () => {
      const r = await fetch(`${base}/readyz`);
      return r.status === 503 ? await r.text() : undefined;
    });
    expect(reason).toMatch(/^not ready: the API server refuses (list|watch) pods \(403 Forbidden\)/);
    expect(reason).toContain('grant the weir ClusterRole list and watch on pods');
    const event = await until('the Event', async () =>
      api.list('events').find((e) => (e as { reason?: string }).reason === 'MissingPermission'),
    );
    expect(event).toMatchObject({
      metadata: { namespace: 'default' },
      involvedObject: { kind: 'Node', name: 'node-1' },
      type: 'Warning',
      source: { component: 'weir-agent', host: 'node-1' },
    });
    expect((event as unknown as { message: string }).message).toMatch(
      /^weir-agent may not (list|watch) pods \(403 Forbidden: /,
    );
    const s = await readAgentStatus<NodeAgentStatus>(join(dir, 'run'));
    expect(s.forbidden).toEqual([expect.objectContaining({ resource: 'pods' })]);
    // Several retries later, still one Event for this refusal.
    await new Promise((r) => setTimeout(r, 1500));
    expect(api.list('events').filter((e) => (e as { reason?: string }).reason === 'MissingPermission')).toHaveLength(1);

    api.allowResource('pods');
    await until(
      'readiness coming back',
      async () => ((await fetch(`${base}/readyz`)).status === 200 ? true : undefined),
      40_000,
    );
    expect((await readAgentStatus<NodeAgentStatus>(join(dir, 'run'))).forbidden).toEqual([]);
  }, 70_000);
});
