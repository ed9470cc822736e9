/**
 * Full 9x9 truth tables on the upstream e2e model (namespaces x/y/z, pods a/b/c, ports 80/81
 * on TCP/UDP/SCTP). Each case is checked against `explain` and against the datapath lookup
 * simulated over the compiled entries, for IPv4 and IPv6 peers.
 */
import type { L4Protocol } from '../../../agent/desired.js';
import type { KubeObject } from '../../../agent/store/types.js';
import { formatTruthTable, policyMatrix } from '../../../agent/policy/matrix.js';
import { Store } from '../../../agent/store/store.js';
import type { StoreChange } from '../../../agent/store/store.js';
import {
  Reachability,
  checkTruthTable,
  cluster,
  engineWith,
  namespaceObj,
  np,
  podObj,
  simulatedMatrix,
} from './model.js';

function expectTable(objects: KubeObject[], reach: Reachability, port: number, protocol: L4Protocol = 'TCP'): void {
  const r = checkTruthTable(objects, reach, port, protocol);
  expect(r.explain).toBe(r.expected);
  expect(r.v4).toBe(r.expected);
  expect(r.v6).toBe(r.expected);
}

const denyIngress = (ns: string): KubeObject => np(ns, 'deny-ingress', { podSelector: {}, ingress: [] });

describe('no policies', () => {
  it('everything connects on every protocol', () => {
    for (const proto of ['TCP', 'UDP', 'SCTP'] as const) expectTable([], new Reachability(true), 80, proto);
  });
});

describe('default deny', () => {
  it('default-deny-ingress isolates every pod of the namespace for ingress only', () => {
    expectTable([denyIngress('x')], new Reachability(true).expectAllIngress('x/*', false), 80);
  });
  it('default-deny-all (Ingress+Egress) isolates both directions', () => {
    const pol = np('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
    expectTable([pol], new Reachability(true).expectAllIngress('x/*', false).expectAllEgress('x/*', false), 80);
  });
  it('missing podSelector selects every pod of the namespace', () => {
    const pol = np('y', 'deny-missing-selector', { ingress: [] });
    expectTable([pol], new Reachability(true).expectAllIngress('y/*', false), 81);
  });
  it('policyTypes defaults to [Ingress, Egress] when egress rules are present', () => {
    const pol = np('x', 'egress-only-rules', {
      podSelector: { matchLabels: { pod: 'a' } },
      egress: [{ to: [{ podSelector: {} }] }],
    });
    // Ingress isolated with no ingress rule: nothing reaches x/a; egress only to pods of x.
    expectTable(
      [pol],
      new Reachability(true).expectAllIngress('x/a', false).expectAllEgress('x/a', false).expect('x/a', 'x/*', true),
      80,
    );
  });
  it('policyTypes [Egress] ignores ingress rules and leaves ingress open', () => {
    const pol = np('x', 'egress-typed', {
      podSelector: { matchLabels: { pod: 'a' } },
      policyTypes: ['Egress'],
      ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
    });
    expectTable([pol], new Reachability(true).expectAllEgress('x/a', false), 80);
  });
});

describe('ingress peers', () => {
  it('podSelector allows pods of the policy namespace only', () => {
    const pol = np('x', 'allow-b', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
    });
    expectTable([pol], new Reachability(true).expectAllIngress('x/a', false).expect('x/b', 'x/a', true), 80);
  });
  it('empty from allows everything to the selected pod', () => {
    const pols = [
      denyIngress('x'),
      np('x', 'allow-all-to-a', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{}] }),
    ];
    expectTable(pols, new Reachability(true).expectAllIngress('x/*', false).expectAllIngress('x/a', true), 80);
  });
  it('namespaceSelector allows every pod of the matching namespaces', () => {
    const pol = np('x', 'from-y', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }],
    });
    expectTable([pol], new Reachability(true).expectAllIngress('x/a', false).expect('y/*', 'x/a', true), 80);
  });
  it('empty namespaceSelector allows every pod of every namespace', () => {
    const pols = [
      denyIngress('x'),
      np('x', 'from-all-ns', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {} }] }] }),
    ];
    expectTable(pols, new Reachability(true), 80);
  });
  it('the default kubernetes.io/metadata.name namespace label can be selected', () => {
    const pol = np('x', 'from-z-by-name', {
      podSelector: {},
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'z' } } }] }],
    });
    expectTable([pol], new Reachability(true).expectAllIngress('x/*', false).expect('z/*', 'x/*', true), 80);
  });
  it('namespaceSelector and podSelector in one peer: both must match (AND)', () => {
    const pol = np('x', 'and', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [
        { from: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } }] },
      ],
    });
    expectTable([pol], new Reachability(true).expectAllIngress('x/a', false).expect('y/b', 'x/a', true), 80);
  });
  it('namespaceSelector and podSelector as two peers: either may match (OR)', () => {
    const pol = np('x', 'or', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [
        { from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }, { podSelector: { matchLabels: { pod: 'b' } } }] },
      ],
    });
    expectTable(
      [pol],
      new Reachability(true).expectAllIngress('x/a', false).expect('y/*', 'x/a', true).expect('x/b', 'x/a', true),
      80,
    );
  });
  it('matchExpressions In on pods', () => {
    const pol = np('x', 'in', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [
        { from: [{ podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b', 'c'] }] } }] },
      ],
    });
    expectTable(
      [pol],
      new Reachability(true).expectAllIngress('x/a', false).expect('x/b', 'x/a', true).expect('x/c', 'x/a', true),
      80,
    );
  });
  it('matchExpressions NotIn on namespaces', () => {
    const pol = np('x', 'notin', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [
        { from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] } }] },
      ],
    });
    expectTable(
      [pol],
      new Reachability(true).expectAllIngress('x/a', false).expect('y/*', 'x/a', true).expect('z/*', 'x/a', true),
      80,
    );
  });
  it('matchExpressions Exists and DoesNotExist', () => {
    const pol = np('x', 'exists', {
      podSelector: { matchExpressions: [{ key: 'pod', operator: 'Exists' }] },
      ingress: [
        {
          from: [
            {
              namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'Exists' }] },
              podSelector: {
                matchExpressions: [
                  { key: 'missing', operator: 'DoesNotExist' },
                  { key: 'pod', operator: 'NotIn', values: ['a'] },
                ],
              },
            },
          ],
        },
      ],
    });
    expectTable(
      [pol],
      new Reachability(true).expectAllIngress('x/*', false).expect('*/b', 'x/*', true).expect('*/c', 'x/*', true),
      80,
    );
  });
  it('ipBlock never matches pod traffic, not even 0.0.0.0/0 or a pod /32', () => {
    const pol = np('x', 'cidrs', {
      podSelector: {},
      ingress: [
        {
          from: [
            { ipBlock: { cidr: '0.0.0.0/0' } },
            { ipBlock: { cidr: '::/0' } },
            { ipBlock: { cidr: '10.244.1.10/32' } },
          ],
        },
      ],
    });
    expectTable([pol], new Reachability(true).expectAllIngress('x/*', false), 80);
  });
});

describe('ports and protocols', () => {
  const fromY81 = np('x', 'y-on-81', {
    podSelector: { matchLabels: { pod: 'a' } },
    ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ port: 81 }] }],
  });
  it('a numbered port allows that port (TCP by default)', () => {
    expectTable([fromY81], new Reachability(true).expectAllIngress('x/a', false).expect('y/*', 'x/a', true), 81);
  });
  it('and denies the other ports', () => {
    expectTable([fromY81], new Reachability(true).expectAllIngress('x/a', false), 80);
  });
  it('a TCP port does not allow UDP or SCTP', () => {
    expectTable([fromY81], new Reachability(true).expectAllIngress('x/a', false), 81, 'UDP');
    expectTable([fromY81], new Reachability(true).expectAllIngress('x/a', false), 81, 'SCTP');
  });
  it('SCTP is not treated as TCP, and isolates for TCP', () => {
    const pol = np('x', 'sctp', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [{ ports: [{ protocol: 'SCTP', port: 80 }] }],
    });
    expectTable([pol], new Reachability(true), 80, 'SCTP');
    expectTable([pol], new Reachability(true).expectAllIngress('x/a', false), 80, 'TCP');
  });
  it('UDP only does not allow TCP', () => {
    const pol = np('x', 'udp', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [{ ports: [{ protocol: 'UDP', port: 81 }] }],
    });
    expectTable([pol], new Reachability(true), 81, 'UDP');
    expectTable([pol], new Reachability(true).expectAllIngress('x/a', false), 81, 'TCP');
  });
  it('a protocol without a port means every port of that protocol', () => {
    const pol = np('x', 'all-udp', { podSelector: {}, ingress: [{ ports: [{ protocol: 'UDP' }] }] });
    for (const port of [80, 81, 5353]) expectTable([pol], new Reachability(true), port, 'UDP');
    expectTable([pol], new Reachability(true).expectAllIngress('x/*', false), 80, 'TCP');
  });
  it('endPort allows the whole range, inclusive, and nothing outside it', () => {
    const pol = np('x', 'range', {
      podSelector: {},
      ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ port: 81, endPort: 90 }] }],
    });
    for (const port of [81, 85, 90]) expectTable([pol], new Reachability(true), port);
    for (const port of [80, 91]) expectTable([pol], new Reachability(true).expectAllIngress('x/*', false), port);
  });
  it('an ingress named port resolves against the receiving pod', () => {
    const pol = np('x', 'named', { podSelector: {}, ingress: [{ ports: [{ port: 'serve-81-tcp' }] }] });
    expectTable([pol], new Reachability(true), 81);
    expectTable([pol], new Reachability(true).expectAllIngress('x/*', false), 80);
  });
  it('a named port with the wrong protocol resolves to nothing', () => {
    const pol = np('x', 'named-udp', {
      podSelector: {},
      ingress: [{ ports: [{ port: 'serve-81-tcp', protocol: 'UDP' }] }],
    });
    expectTable([pol], new Reachability(true).expectAllIngress('x/*', false), 81, 'UDP');
  });
  it('an egress named port resolves against each destination pod', () => {
    const pol = np('x', 'egress-named', {
      podSelector: { matchLabels: { pod: 'a' } },
      policyTypes: ['Egress'],
      egress: [{ ports: [{ port: 'serve-80-tcp' }] }],
    });
    expectTable([pol], new Reachability(true), 80);
    expectTable([pol], new Reachability(true).expectAllEgress('x/a', false), 81);
  });
});

describe('egress and both directions', () => {
  it('egress deny on the client wins even when the server allows', () => {
    const pols = [
      np('x', 'deny-egress-a', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'] }),
      np('y', 'allow-all-in', { podSelector: {}, ingress: [{}] }),
    ];
    expectTable(pols, new Reachability(true).expectAllEgress('x/a', false), 80);
  });
  it('egress to a namespace and pod selector in another namespace', () => {
    const pol = np('x', 'to-y-b', {
      podSelector: { matchLabels: { pod: 'a' } },
      policyTypes: ['Egress'],
      egress: [
        { to: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } }] },
      ],
    });
    expectTable([pol], new Reachability(true).expectAllEgress('x/a', false).expect('x/a', 'y/b', true), 80);
  });
  it('Ingress and Egress in one policy, enforced independently', () => {
    const pol = np('x', 'both', {
      podSelector: { matchLabels: { pod: 'a' } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }],
      egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: 'z' } } }], ports: [{ port: 80 }] }],
    });
    const reach = new Reachability(true)
      .expectAllIngress('x/a', false)
      .expect('y/*', 'x/a', true)
      .expectAllEgress('x/a', false)
      .expect('x/a', 'z/*', true);
    expectTable([pol], reach, 80);
    expectTable(
      [pol],
      new Reachability(true).expectAllIngress('x/a', false).expect('y/*', 'x/a', true).expectAllEgress('x/a', false),
      81,
    );
  });
  it('multiple policies are a union: an allow-all policy takes precedence', () => {
    const pols = [
      np('x', 'only-b', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
      }),
      np('x', 'allow-all', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{}] }),
    ];
    expectTable(pols, new Reachability(true), 80);
  });
  it('multiple egress policies: the union of their rules', () => {
    const pols = [
      np('x', 'to-y', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }],
      }),
      np('x', 'to-z-c', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [
          { to: [{ namespaceSelector: { matchLabels: { ns: 'z' } }, podSelector: { matchLabels: { pod: 'c' } } }] },
        ],
      }),
    ];
    expectTable(
      pols,
      new Reachability(true).expectAllEgress('x/a', false).expect('x/a', 'y/*', true).expect('x/a', 'z/c', true),
      80,
    );
  });
  it('egress ipBlock 0.0.0.0/0 does not reach pods', () => {
    const pol = np('x', 'egress-world', {
      podSelector: {},
      policyTypes: ['Egress'],
      egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] } }] }],
    });
    expectTable([pol], new Reachability(true).expectAllEgress('x/*', false), 80);
  });
});

describe('updates, as the upstream suite applies them to a running cluster', () => {
  /** Applies the objects, then the updates one by one, and checks the table after the last. */
  function expectAfter(
    objects: KubeObject[],
    updates: ((s: Store) => StoreChange | undefined)[],
    reach: Reachability,
    port: number,
  ): void {
    const store = new Store();
    const engine = engineWith([]);
    engine.applyAll([...cluster(), ...objects].map((o) => store.upsert(o)!));
    for (const u of updates) {
      const ch = u(store);
      if (ch) engine.apply(ch);
    }
    const expected = formatTruthTable(reach.matrix(port, 'TCP'));
    expect(formatTruthTable(policyMatrix(engine, port, 'TCP'))).toBe(expected);
    expect(formatTruthTable(simulatedMatrix(engine, port, 'TCP', 4))).toBe(expected);
    expect(formatTruthTable(simulatedMatrix(engine, port, 'TCP', 6))).toBe(expected);
  }
  const fromNsYPodA = np('x', 'from-y-a', {
    podSelector: {},
    ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y', extra: 'yes' } } }] }],
  });

  it('allows ingress from a namespace once it is relabelled to match', () => {
    expectAfter(
      [fromNsYPodA],
      [(s) => s.upsert(namespaceObj('y', { ns: 'y', extra: 'yes' }))],
      new Reachability(true).expectAllIngress('x/*', false).expect('y/*', 'x/*', true),
      80,
    );
  });
  it('allows ingress from a pod once it is relabelled to match', () => {
    const pol = np('x', 'from-b', {
      podSelector: {},
      ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
    });
    expectAfter(
      [pol],
      [(s) => s.upsert(podObj('x', 'c', { pod: 'b' }))],
      new Reachability(true).expectAllIngress('x/*', false).expect('x/b', 'x/*', true).expect('x/c', 'x/*', true),
      80,
    );
  });
  it('denies ingress to a pod once it is relabelled into a policy', () => {
    const pol = np('x', 'deny-a', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [] });
    expectAfter(
      [pol],
      [(s) => s.upsert(podObj('x', 'b', { pod: 'a', was: 'b' }))],
      new Reachability(true).expectAllIngress('x/a', false).expectAllIngress('x/b', false),
      80,
    );
  });
  it('stops enforcing a policy once it is deleted', () => {
    expectAfter([denyIngress('x')], [(s) => s.delete('NetworkPolicy', 'x/deny-ingress')], new Reachability(true), 80);
  });
  it('enforces a policy once it is updated (port 80 -> 81)', () => {
    const on80 = np('x', 'on-port', { podSelector: {}, ingress: [{ ports: [{ port: 80 }] }] });
    const on81 = np('x', 'on-port', { podSelector: {}, ingress: [{ ports: [{ port: 81 }] }] });
    expectAfter([on80], [(s) => s.upsert(on81)], new Reachability(true).expectAllIngress('x/*', false), 80);
    expectAfter([on80], [(s) => s.upsert(on81)], new Reachability(true), 81);
  });
  it('a deleted pod leaves no entries behind, and a re-created one is allowed again', () => {
    const pol = np('x', 'from-y-b', {
      podSelector: {},
      ingress: [
        { from: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } }] },
      ],
    });
    expectAfter(
      [pol],
      [(s) => s.delete('Pod', 'y/b'), (s) => s.upsert(podObj('y', 'b'))],
      new Reachability(true).expectAllIngress('x/*', false).expect('y/b', 'x/*', true),
      80,
    );
  });
});
