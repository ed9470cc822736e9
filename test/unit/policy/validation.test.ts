/** Every rejected input says which policy, which field and why; a bad rule never widens access. */
import { PolicyEngine } from '../../../agent/policy/engine.js';
import { formatProblem } from '../../../agent/policy/compiled.js';
import type { KubeObject } from '../../../agent/store/types.js';
import { Reachability, checkTruthTable, cluster, np } from './model.js';

function errorsOf(spec: Record<string, unknown>): string[] {
  const e = new PolicyEngine({ clusterPodCIDRs: ['10.244.0.0/16'] });
  e.upsertAll([np('x', 'bad', spec)]);
  return e.errors().map(formatProblem);
}

const ingressPorts = (ports: unknown[]): Record<string, unknown> => ({ podSelector: {}, ingress: [{ ports }] });
const ingressFrom = (from: unknown[]): Record<string, unknown> => ({ podSelector: {}, ingress: [{ from }] });

describe('validation messages name the policy and the field', () => {
  it.each([
    [
      'bad CIDR',
      ingressFrom([{ ipBlock: { cidr: '10.0.0.0/33' } }]),
      'NetworkPolicy x/bad: spec.ingress[0].from[0].ipBlock.cidr: "10.0.0.0/33" has an invalid prefix length (0-32 for IPv4)',
    ],
    [
      'not an address',
      ingressFrom([{ ipBlock: { cidr: 'ten.0.0.0/8' } }]),
      'NetworkPolicy x/bad: spec.ingress[0].from[0].ipBlock.cidr: "ten.0.0.0/8" is not a valid CIDR (expected e.g. 10.0.0.0/8 or fd00::/64)',
    ],
    [
      'missing cidr',
      ingressFrom([{ ipBlock: { except: [] } }]),
      'NetworkPolicy x/bad: spec.ingress[0].from[0].ipBlock.cidr: is required',
    ],
    [
      'except outside cidr',
      ingressFrom([{ ipBlock: { cidr: '192.168.0.0/16', except: ['10.1.0.0/16'] } }]),
      'NetworkPolicy x/bad: spec.ingress[0].from[0].ipBlock.except[0]: "10.1.0.0/16" is not inside cidr 192.168.0.0/16; every except must be a strict subset of the cidr',
    ],
    [
      'except equal to cidr',
      ingressFrom([{ ipBlock: { cidr: '192.168.0.0/16', except: ['192.168.0.0/16'] } }]),
      'NetworkPolicy x/bad: spec.ingress[0].from[0].ipBlock.except[0]: "192.168.0.0/16" is not inside cidr 192.168.0.0/16; every except must be a strict subset of the cidr',
    ],
    [
      'port out of range',
      ingressPorts([{ port: 70000 }]),
      'NetworkPolicy x/bad: spec.ingress[0].ports[0].port: port 70000 is out of range (1-65535)',
    ],
    [
      'port zero',
      ingressPorts([{ port: 0 }]),
      'NetworkPolicy x/bad: spec.ingress[0].ports[0].port: port 0 is out of range (1-65535)',
    ],
    [
      'endPort below port',
      ingressPorts([{ port: 90, endPort: 80 }]),
      'NetworkPolicy x/bad: spec.ingress[0].ports[0].endPort: endPort 80 is below port 90; it must be greater than or equal to port',
    ],
    [
      'endPort out of range',
      ingressPorts([{ port: 90, endPort: 65536 }]),
      'NetworkPolicy x/bad: spec.ingress[0].ports[0].endPort: endPort 65536 is out of range (1-65535)',
    ],
    [
      'endPort with a named port',
      ingressPorts([{ port: 'http', endPort: 90 }]),
      'NetworkPolicy x/bad: spec.ingress[0].ports[0].endPort: endPort cannot be used with the named port "http"; use a numeric port',
    ],
    [
      'endPort without port',
      ingressPorts([{ endPort: 90 }]),
      'NetworkPolicy x/bad: spec.ingress[0].ports[0].endPort: endPort needs a numeric port to start the range',
    ],
    [
      'unknown protocol',
      ingressPorts([{ protocol: 'ICMP', port: 80 }]),
      'NetworkPolicy x/bad: spec.ingress[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
    ],
    [
      'lower-case protocol (the API server refuses it)',
      ingressPorts([{ protocol: 'tcp', port: 80 }]),
      'NetworkPolicy x/bad: spec.ingress[0].ports[0].protocol: Unsupported value: "tcp": supported values: "SCTP", "TCP", "UDP"',
    ],
    [
      'ipBlock without a prefix length',
      ingressFrom([{ ipBlock: { cidr: '192.0.2.1' } }]),
      'NetworkPolicy x/bad: spec.ingress[0].from[0].ipBlock.cidr: "192.0.2.1" has no prefix length; write 192.0.2.1/32 for this one address',
    ],
    [
      'invalid label value in a selector',
      ingressFrom([{ podSelector: { matchLabels: { role: 'db=x' } } }]),
      `NetworkPolicy x/bad: spec.ingress[0].from[0].podSelector.matchLabels: Invalid value: "db=x": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`,
    ],
    [
      'invalid port name',
      ingressPorts([{ port: 'Not_A_Name' }]),
      'NetworkPolicy x/bad: spec.ingress[0].ports[0].port: "Not_A_Name" is neither a port number (1-65535) nor a valid port name (1-15 lowercase letters, digits and \'-\')',
    ],
    [
      'unknown operator',
      ingressFrom([{ podSelector: { matchExpressions: [{ key: 'app', operator: 'Equals', values: ['a'] }] } }]),
      'NetworkPolicy x/bad: spec.ingress[0].from[0].podSelector.matchExpressions[0].operator: unknown operator "Equals" (use In, NotIn, Exists or DoesNotExist)',
    ],
    [
      'In without values',
      ingressFrom([{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'In', values: [] }] } }]),
      'NetworkPolicy x/bad: spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values: must not be empty for operator In',
    ],
    [
      'Exists with values',
      ingressFrom([{ podSelector: { matchExpressions: [{ key: 'app', operator: 'Exists', values: ['a'] }] } }]),
      'NetworkPolicy x/bad: spec.ingress[0].from[0].podSelector.matchExpressions[0].values: must be empty for operator Exists',
    ],
    [
      'empty label key in matchLabels',
      ingressFrom([{ podSelector: { matchLabels: { '': 'a' } } }]),
      'NetworkPolicy x/bad: spec.ingress[0].from[0].podSelector.matchLabels: label key must not be empty',
    ],
    [
      'empty label key in an expression',
      { podSelector: {}, egress: [{ to: [{ podSelector: { matchExpressions: [{ key: '', operator: 'Exists' }] } }] }] },
      'NetworkPolicy x/bad: spec.egress[0].to[0].podSelector.matchExpressions[0].key: label key must not be empty',
    ],
    [
      'ipBlock with a selector in one peer',
      ingressFrom([{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }]),
      'NetworkPolicy x/bad: spec.ingress[0].from[0]: ipBlock cannot be combined with podSelector or namespaceSelector in one peer; write them as two peers',
    ],
    [
      'empty peer',
      ingressFrom([{}]),
      'NetworkPolicy x/bad: spec.ingress[0].from[0]: a peer needs podSelector, namespaceSelector or ipBlock',
    ],
  ])('%s', (_name, spec, message) => {
    expect(errorsOf(spec)).toEqual([message]);
  });

  it('an invalid podSelector fails closed: the whole namespace is isolated', () => {
    expect(
      errorsOf({ podSelector: { matchExpressions: [{ key: 'pod', operator: 'Is', values: ['a'] }] }, ingress: [{}] }),
    ).toEqual([
      'NetworkPolicy x/bad: spec.podSelector.matchExpressions[0].operator: unknown operator "Is" (use In, NotIn, Exists or DoesNotExist)',
      'NetworkPolicy x/bad: spec.podSelector: is invalid, so this policy isolates every pod of its namespace and allows nothing until it is fixed',
    ]);
  });
});

describe('an invalid rule never widens access', () => {
  function expectTable(objects: KubeObject[], reach: Reachability, port: number): void {
    const r = checkTruthTable(objects, reach, port);
    expect(r.explain).toBe(r.expected);
    expect(r.v4).toBe(r.expected);
    expect(r.v6).toBe(r.expected);
  }
  it('a rule with a bad port allows nothing, the valid rule still applies, the pods stay isolated', () => {
    const pol = np('x', 'half-bad', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [{ ports: [{ port: 80 }, { port: 99999 }] }, { from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
    });
    // Rule 0 (every peer on 80) is dropped whole: only rule 1 (x/b, any port) remains.
    expectTable([pol], new Reachability(true).expectAllIngress('x/a', false).expect('x/b', 'x/a', true), 80);
  });
  it('a bad except does not turn a CIDR rule into allow-all', () => {
    const pol = np('x', 'bad-except', {
      podSelector: {},
      policyTypes: ['Egress'],
      egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['nonsense'] } }] }],
    });
    expectTable([pol], new Reachability(true).expectAllEgress('x/*', false), 80);
  });
  it('a bad podSelector isolates every pod of the namespace and allows nothing', () => {
    const pol = np('y', 'bad-selector', {
      podSelector: { matchExpressions: [{ key: 'pod', operator: 'Is', values: ['a'] }] },
      ingress: [{}],
    });
    expectTable([pol], new Reachability(true).expectAllIngress('y/*', false), 80);
  });
  it('the compiled entries of a bad rule are empty', () => {
    const e = new PolicyEngine({ nodeName: 'node-1', clusterPodCIDRs: ['10.244.0.0/16'] });
    e.upsertAll([...cluster(), np('x', 'bad', ingressPorts([{ port: 'http', endPort: 81 }]))]);
    const ep = e.snapshot().endpoints.get('x/a')!;
    expect(ep.ingressIsolated).toBe(true);
    expect(ep.entries).toEqual([]);
  });
});

describe('warnings', () => {
  it('an ipBlock that covers the pod network warns that ipBlock does not select pods', () => {
    const e = new PolicyEngine({ clusterPodCIDRs: ['10.244.0.0/16'] });
    e.upsertAll([
      np(
        'x',
        'wide',
        ingressFrom([
          { ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } },
          { ipBlock: { cidr: '192.168.0.0/16' } },
        ]),
      ),
    ]);
    expect(e.warnings().map(formatProblem)).toEqual([
      'NetworkPolicy x/wide: spec.ingress[0].from[0].ipBlock.cidr: 10.0.0.0/8 covers the pod network 10.244.0.0/16, but ipBlock does not select pods here: pod traffic is matched by pod identity only. Use podSelector or namespaceSelector to allow pods.',
    ]);
  });
  it('without known pod CIDRs, an ipBlock holding pod IPs warns with the pods', () => {
    const e = new PolicyEngine();
    e.upsertAll([
      ...cluster(),
      np('x', 'pod-ip', {
        podSelector: {},
        policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr: '10.244.1.10/32' } }] }],
      }),
    ]);
    expect(e.warnings().map(formatProblem)).toEqual([
      'NetworkPolicy x/pod-ip: spec.egress[0].to[0].ipBlock.cidr: 10.244.1.10/32 covers pod IPs (y/a), but ipBlock does not select pods here: pod traffic is matched by pod identity only. Use podSelector or namespaceSelector to allow pods.',
    ]);
  });
  it('rules of a direction missing from policyTypes are reported as ignored', () => {
    const e = new PolicyEngine();
    e.upsertAll([np('x', 'typed', { podSelector: {}, policyTypes: ['Ingress'], egress: [{}] })]);
    expect(e.warnings().map(formatProblem)).toEqual([
      'NetworkPolicy x/typed: spec.egress: is ignored: policyTypes ["Ingress"] does not include Egress',
    ]);
  });
});
