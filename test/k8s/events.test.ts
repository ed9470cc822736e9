/** Kubernetes Events for policy problems, posted to the test API server. */
import { KubeConfig } from '@kubernetes/client-node';
import { PolicyEventRecorder } from '../../agent/node/events.js';
import { TestApiServer } from '../apiserver/server.js';

describe('policy problem Events', () => {
  const server = new TestApiServer();
  beforeAll(() => server.start());
  afterAll(() => server.stop());

  it('records one Warning Event per problem on the NetworkPolicy, once', async () => {
    const kc = new KubeConfig();
    kc.loadFromString(server.kubeconfig());
    const rec = new PolicyEventRecorder(kc, 'node-1');
    const problem = {
      policy: 'x/bad',
      field: 'spec.ingress[0].ports[0].endPort',
      message: 'endPort 70 is below port 80',
    };
    expect(await rec.report([problem], 'error')).toBe(1);
    expect(await rec.report([problem], 'error')).toBe(0);
    const events = server.list('events');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      metadata: { namespace: 'x' },
      involvedObject: { kind: 'NetworkPolicy', name: 'bad', namespace: 'x' },
      type: 'Warning',
      reason: 'PolicyRuleRejected',
      message: 'spec.ingress[0].ports[0].endPort: endPort 70 is below port 80',
      source: { component: 'weir-agent', host: 'node-1' },
    });
    expect(events[0]!.metadata.name).toMatch(/^bad\./);
  });

  it('retries a problem whose Event could not be posted', async () => {
    const kc = new KubeConfig();
    kc.loadFromString(server.kubeconfig());
    const errors: string[] = [];
    const rec = new PolicyEventRecorder(kc, 'node-1', (m) => errors.push(m));
    const problem = { policy: 'y/p', field: 'spec.egress[0].to[0].ipBlock', message: 'covers pod IPs' };
    await server.stop();
    expect(await rec.report([problem], 'warning')).toBe(1);
    expect(errors[0]).toMatch(/could not record an Event for NetworkPolicy y\/p/);
    await server.start();
    expect(await rec.report([problem], 'warning')).toBe(1);
    expect(server.list('events').filter((e) => e.metadata.namespace === 'y')).toHaveLength(1);
  });
});
