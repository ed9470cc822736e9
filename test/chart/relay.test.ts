/**
 * The chart's relay: a Deployment (on by default, one replica) running `weir relay` with the
 * agents found by the DaemonSet's own labels, the certificates the chart makes (a CA, the
 * agents' server certificate for "weir-agent", the relay's client certificate; checked here
 * with node's crypto), the agents' TCP listener switched on only with those, RBAC limited to
 * listing pods, bring-your-own Secrets, and nothing of it when relay.enabled is false.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Helm, type Rendered } from './render.js';
import { validateObject, type RenderedObject } from './validate.js';

type Obj = RenderedObject & Record<string, any>;

let helm: Helm;
let defaults: Rendered;
let tmp: string;
const byName = (r: Rendered, kind: string, name: string) =>
  r.byKind(kind).find((o) => o.metadata.name === name) as Obj | undefined;
const b64 = (s: string) => Buffer.from(s, 'base64').toString();

beforeAll(() => {
  helm = new Helm();
  defaults = helm.template();
  tmp = mkdtempSync(join(tmpdir(), 'wob-chart-relay-'));
});
afterAll(() => {
  helm?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('chart: the relay', () => {
  it('is on by default: one replica of `weir relay` finding the agents by the DaemonSet pod labels', () => {
    const d = byName(defaults, 'Deployment', 'weir-relay')!;
    validateObject(d);
    expect(d.spec.replicas).toBe(1);
    const c = d.spec.template.spec.containers[0];
    expect(c.args[0]).toBe('relay');
    const selector = (c.args as string[])
      .find((a) => a.startsWith('--agent-selector='))!
      .split('=')
      .slice(1)
      .join('=');
    const dsLabels = (defaults.byKind('DaemonSet')[0] as Obj).spec.template.metadata.labels as Record<string, string>;
    for (const kv of selector.split(',')) {
      const [k, v] = kv.split('=');
      expect([k, dsLabels[k!]]).toEqual([k, v]);
    }
    expect(c.args).toContain('--agent-port=4244');
    expect(c.readinessProbe.grpc.port).toBe(4245);
    expect(d.spec.template.spec.serviceAccountName).toBe('weir-relay');
    const role = byName(defaults, 'Role', 'weir-relay')!;
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }]);
    validateObject(byName(defaults, 'RoleBinding', 'weir-relay')!);
    expect(byName(defaults, 'Service', 'weir-relay')!.spec.ports[0]).toMatchObject({ port: 80, targetPort: 'grpc' });
  });

  it('makes a CA and certificates that chain to it: the agents\' for "weir-agent", the relay\'s client one', () => {
    const ca = byName(defaults, 'Secret', 'weir-flows-ca')!;
    const agentTls = byName(defaults, 'Secret', 'weir-agent-tls')!;
    const relayTls = byName(defaults, 'Secret', 'weir-relay-client-tls')!;
    for (const s of [ca, agentTls, relayTls]) validateObject(s);
    const caCert = new X509Certificate(b64(ca.data['ca.crt']));
    expect(caCert.ca).toBe(true);
    const agentCert = new X509Certificate(b64(agentTls.data['tls.crt']));
    const relayCert = new X509Certificate(b64(relayTls.data['tls.crt']));
    expect(agentCert.verify(caCert.publicKey)).toBe(true);
    expect(relayCert.verify(caCert.publicKey)).toBe(true);
    expect(agentCert.subjectAltName).toContain('DNS:weir-agent');
    expect(b64(agentTls.data['ca.crt'])).toBe(b64(ca.data['ca.crt']));
    expect(agentTls.type).toBe('kubernetes.io/tls');
    // the private key matches its certificate
    expect(agentCert.checkPrivateKey(createPrivateKey(b64(agentTls.data['tls.key'])))).toBe(true);
  });

  it("switches on the agents' TCP listener with the agents' certificate, and mounts the relay's", () => {
    const ds = defaults.byKind('DaemonSet')[0] as Obj;
    const agent = ds.spec.template.spec.containers.find((c: { name: string }) => c.name === 'agent');
    expect(agent.args).toContain('--observer-address=$(HOST_IP):4244');
    expect(agent.env.find((e: { name: string }) => e.name === 'HOST_IP').valueFrom.fieldRef.fieldPath).toBe(
      'status.hostIP',
    );
    expect(ds.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'flows-tls').secret.secretName).toBe(
      'weir-agent-tls',
    );
    const relay = byName(defaults, 'Deployment', 'weir-relay')!;
    expect(relay.spec.template.spec.volumes[0].secret.secretName).toBe('weir-relay-client-tls');
  });

  it('uses your Secrets when told to, and makes none', () => {
    const f = join(tmp, 'own.yaml');
    writeFileSync(
      f,
      'relay:\n  tls:\n    existingSecrets:\n      enabled: true\n      agent: my-agent\n      relay: my-relay\n',
    );
    const r = helm.template({ values: [f] });
    expect(r.byKind('Secret')).toHaveLength(0);
    const ds = r.byKind('DaemonSet')[0] as Obj;
    expect(ds.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'flows-tls').secret.secretName).toBe(
      'my-agent',
    );
    expect(byName(r, 'Deployment', 'weir-relay')!.spec.template.spec.volumes[0].secret.secretName).toBe('my-relay');
    const bad = join(tmp, 'half.yaml');
    writeFileSync(bad, 'relay:\n  tls:\n    existingSecrets:\n      enabled: true\n');
    expect(() => helm.template({ values: [bad] })).toThrow(/existingSecrets\.(agent|relay) is required/);
  });

  it("NOTES.txt says how to reach the relay: a port-forward to its Service's port, then weir observe --server", () => {
    const notes = helm.notes();
    const svc = byName(defaults, 'Service', 'weir-relay')!;
    const port = (svc.spec.ports as Array<{ port: number }>)[0]!.port;
    expect(notes).toContain(`kubectl -n kube-system port-forward service/weir-relay 4245:${port}`);
    expect(notes).toContain('weir observe --server localhost:4245 --verdict DROPPED --last 20');
    expect(notes).toContain('weir observe --server localhost:4245 --follow');
    // inside the cluster: the relay container's own listen port
    const relay = byName(defaults, 'Deployment', 'weir-relay')!.spec.template.spec.containers[0];
    const listen = (relay.ports as Array<{ containerPort: number }>)[0]!.containerPort;
    expect(notes).toContain(
      `kubectl -n kube-system exec deploy/weir-relay -- weir observe --server localhost:${listen} --last 20`,
    );
    // another Service port and release name are followed
    const custom = helm.notes({ name: 'edge', namespace: 'net', set: ['relay.service.port=8443'] });
    expect(custom).toContain('kubectl -n net port-forward service/edge-weir-relay 4245:8443');
    // no relay, no word of it
    expect(helm.notes({ set: ['relay.enabled=false'] })).not.toContain('relay');
  });

  it('renders nothing of the relay, and no agent TCP listener, when relay.enabled is false', () => {
    const f = join(tmp, 'off.yaml');
    writeFileSync(f, 'relay:\n  enabled: false\n');
    const r = helm.template({ values: [f] });
    expect(r.byKind('Deployment')).toHaveLength(0);
    expect(r.byKind('Secret')).toHaveLength(0);
    expect(r.byKind('Role')).toHaveLength(0);
    const ds = r.byKind('DaemonSet')[0] as Obj;
    const agent = ds.spec.template.spec.containers.find((c: { name: string }) => c.name === 'agent');
    expect((agent.args as string[]).some((a) => a.startsWith('--observer'))).toBe(false);
  });
});
