/** `weir policy explain` as a user runs it: the built CLI on manifests in test/fixtures/xyz. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runExplain } from '../../../agent/cli/commands/explain.js';

function run(args: Partial<Parameters<typeof runExplain>[0]>): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const code = runExplain(
    { port: 80, protocol: 'TCP', filename: ['test/fixtures/xyz'], output: 'text', ...args },
    (s) => (out += s),
    (s) => (err += s),
  );
  return { code, out, err };
}

describe('weir policy explain', () => {
  it('explains an allowed connection: which policy selects the pod and which rule allowed it', () => {
    const r = run({ from: 'y/a', to: 'x/b' });
    expect(r.code).toBe(0);
    expect(r.out).toContain('y/a -> x/b TCP/80: ALLOWED');
    expect(r.out).toContain(
      'allowed by x/allow-ns-y-pod-a ingress[0]: peer matches: y/a matches namespaceSelector ns=y and podSelector pod=a; port matches: TCP port "serve-80-tcp" is 80 on x/b',
    );
  });
  it('explains a denial: isolated by which policy, and the closest rule and why it missed', () => {
    const r = run({ from: 'y/b', to: 'x/b' });
    expect(r.code).toBe(2);
    expect(r.out).toContain('y/b -> x/b TCP/80: DENIED');
    expect(r.out).toContain(
      'x/b is isolated for ingress by x/allow-ns-y-pod-a and none of the 1 ingress rule(s) of that policy matches',
    );
    expect(r.out).toContain(
      'closest: x/allow-ns-y-pod-a ingress[0]: peer misses: y/b has pod=b, wants pod=a (podSelector pod=a); port matches: TCP port "serve-80-tcp" is 80 on x/b',
    );
  });
  it('-o json gives allowed and the reasons per direction', () => {
    const j = JSON.parse(run({ from: 'z/c', to: 'y/a', output: 'json' }).out) as {
      allowed: boolean;
      egress: { allowed: boolean; isolated: boolean; policies: string[]; closest: { reasons: string[] }[] };
      ingress: { isolated: boolean };
    };
    expect(j.allowed).toBe(false);
    expect(j.egress).toMatchObject({ allowed: false, isolated: true, policies: ['z/egress-to-x'] });
    expect(j.egress.closest[0]!.reasons).toEqual([
      'peer misses: namespace y fails "ns in (x)" (ns=y) (namespaceSelector ns in (x))',
      'port matches: ports is empty (every port and protocol)',
    ]);
    expect(j.ingress.isolated).toBe(false);
  });
  it('--matrix prints the upstream truth-table layout, and -o json the probe layout', () => {
    const table = run({ matrix: true, port: 80 }).out.trimEnd().split('\n');
    expect(table[0]).toBe('-  \tx/a\tx/b\tx/c\ty/a\ty/b\ty/c\tz/a\tz/b\tz/c');
    expect(table[4]).toBe('y/a\t.\t.\t.\t.\t.\t.\t.\t.\t.');
    expect(table[5]).toBe('y/b\tX\tX\tX\t.\t.\t.\t.\t.\t.');
    expect(table[9]).toBe('z/c\tX\tX\tX\tX\tX\tX\tX\tX\t.');
    const j = JSON.parse(run({ matrix: true, port: 81, output: 'json' }).out) as {
      port: number;
      protocol: string;
      results: { from: string; to: string; connected: boolean }[];
    };
    expect(j.port).toBe(81);
    expect(j.protocol).toBe('TCP');
    expect(j.results).toHaveLength(81);
    expect(j.results.find((x) => x.from === 'y/a' && x.to === 'x/a')).toEqual({
      from: 'y/a',
      to: 'x/a',
      connected: false,
    });
    expect(j.results.find((x) => x.from === 'x/a' && x.to === 'y/a')).toEqual({
      from: 'x/a',
      to: 'y/a',
      connected: true,
    });
  });
  it('names an unknown pod and lists the known ones', () => {
    expect(() => run({ from: 'y/q', to: 'x/a' })).toThrow(
      'no pod y/q in the manifests (pods: x/a, x/b, x/c, y/a, y/b, y/c, z/a, z/b, z/c); add its Pod manifest with -f',
    );
  });
  it('runs from the weir binary with exit status 2 on a denial', () => {
    const r = spawnSync(
      'node',
      [
        'dist/agent/cli/main.js',
        'policy',
        'explain',
        '--from',
        'y/b',
        '--to',
        'x/a',
        '--port',
        '80',
        '-f',
        'test/fixtures/xyz',
      ],
      { encoding: 'utf8' },
    );
    expect(r.status).toBe(2);
    expect(r.stdout).toContain('DENIED');
    const bad = spawnSync(
      'node',
      [
        'dist/agent/cli/main.js',
        'policy',
        'explain',
        '--from',
        'y/b',
        '--to',
        'x/a',
        '--port',
        '99999',
        '-f',
        'test/fixtures/xyz',
      ],
      { encoding: 'utf8' },
    );
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain("option '--port <port>' argument '99999' is invalid. must be a port number 1-65535");
  });
  it('reports policy errors and warnings on stderr and still explains, the bad rule allowing nothing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weir-compiler-cli-'));
    try {
      writeFileSync(
        join(dir, 'bad.yaml'),
        [
          'apiVersion: networking.k8s.io/v1',
          'kind: NetworkPolicy',
          'metadata: {name: typo, namespace: y}',
          'spec:',
          '  podSelector: {matchLabels: {pod: a}}',
          '  ingress:',
          '  - from: [{ipBlock: {cidr: 10.0.0.0/8}}]',
          '  - ports: [{port: 80, endPort: 79}]',
        ].join('\n'),
      );
      const r = run({ from: 'x/a', to: 'y/a', filename: ['test/fixtures/xyz', dir], podCidr: ['10.244.0.0/16'] });
      expect(r.err).toContain(
        'error: NetworkPolicy y/typo: spec.ingress[1].ports[0].endPort: endPort 79 is below port 80; it must be greater than or equal to port\n',
      );
      expect(r.err).toContain(
        'warning: NetworkPolicy y/typo: spec.ingress[0].from[0].ipBlock.cidr: 10.0.0.0/8 covers the pod network 10.244.0.0/16, but ipBlock does not select pods here',
      );
      expect(r.code).toBe(2);
      expect(r.out).toContain(
        'closest: y/typo ingress[1]: rule is invalid and allows nothing: NetworkPolicy y/typo: spec.ingress[1].ports[0].endPort: endPort 79 is below port 80',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('explains traffic to and from addresses outside the pods: ipBlocks, excepts, the pod network', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weir-compiler-cli-'));
    try {
      writeFileSync(
        join(dir, 'egress.yaml'),
        [
          'apiVersion: networking.k8s.io/v1',
          'kind: NetworkPolicy',
          'metadata: {name: to-internet, namespace: x}',
          'spec:',
          '  podSelector: {matchLabels: {pod: a}}',
          '  policyTypes: [Egress]',
          '  egress:',
          '  - to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]',
          '    ports: [{port: 443}]',
        ].join('\n'),
      );
      const go = (to: string) =>
        run({ from: 'x/a', to, port: 443, filename: ['test/fixtures/xyz', dir], podCidr: ['10.244.0.0/16'] });
      const ok = go('10.9.9.9');
      expect(ok.code).toBe(0);
      expect(ok.out).toContain(
        'allowed by x/to-internet egress[0]: peer matches: 10.9.9.9 is inside ipBlock 10.0.0.0/8 except 10.1.0.0/16; port matches: TCP 443',
      );
      expect(ok.out).toContain(
        'ingress (enforced at 10.9.9.9): allowed - 10.9.9.9 is not a pod: no policy is enforced there',
      );
      expect(go('10.1.2.3').out).toContain('peer misses: 10.1.2.3 is inside 10.0.0.0/8 but excepted by 10.1.0.0/16');
      expect(go('10.244.7.7').out).toContain(
        'peer misses: 10.244.7.7 is the pod network, but no known pod: ipBlock never matches it',
      );
      // A pod's address means the pod: pod selectors apply, ipBlocks do not.
      const pod = go('10.244.1.10');
      expect(pod.out).toContain('x/a -> 10.244.1.10 TCP/443: DENIED');
      expect(pod.out).toContain('ingress (enforced at y/a)');
      expect(pod.out).toContain('peer misses: ipBlock 10.0.0.0/8 except 10.1.0.0/16 never matches pod traffic');
      expect(() => run({ from: '8.8.8.8', to: '1.1.1.1' })).toThrow(
        'neither 8.8.8.8 nor 1.1.1.1 is a pod: weir enforces policy at pods only',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('weir policy explain --to-service', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'weir-explain-svc-'));
    writeFileSync(
      join(dir, 'svc.yaml'),
      [
        'apiVersion: v1\nkind: Service\nmetadata: {name: s-b, namespace: x}\nspec:\n  selector: {pod: b}\n  ports: [{name: web, port: 8080, targetPort: serve-80-tcp}]',
        'apiVersion: v1\nkind: Service\nmetadata: {name: none, namespace: x}\nspec:\n  selector: {pod: nobody}\n  ports: [{port: 80}]',
      ].join('\n---\n'),
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const svcRun = (args: Partial<Parameters<typeof runExplain>[0]>) =>
    run({ filename: ['test/fixtures/xyz', dir], ...args });

  it("explains each backend's verdict: the Service port by name, the targetPort resolved on the pod", () => {
    const allowed = svcRun({ from: 'y/a', toService: 'x/s-b', port: 'web' });
    expect(allowed.out).toContain('y/a -> Service x/s-b port 8080/TCP (web): 1 backend');
    expect(allowed.out).toContain('backend x/b port 80:');
    expect(allowed.out).toContain('y/a -> x/b TCP/80: ALLOWED');
    expect(allowed.code).toBe(0);
    const denied = svcRun({ from: 'y/b', toService: 'x/s-b', port: 8080, output: 'json' });
    expect(denied.code).toBe(2);
    expect(JSON.parse(denied.out)).toMatchObject({
      service: 'x/s-b',
      port: 8080,
      allowed: false,
      backends: [{ pod: 'x/b', port: 80, explanation: { allowed: false } }],
    });
  });

  it('a Service that selects no pod has no backend: denied, and says so', () => {
    const r = svcRun({ from: 'y/a', toService: 'x/none', port: 80 });
    expect(r.code).toBe(2);
    expect(r.out).toContain('0 backends (no pod matches its selector with that port');
  });
});
