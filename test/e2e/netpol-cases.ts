/**
 * The upstream Kubernetes NetworkPolicy e2e cases on the x/y/z a/b/c model, transcribed for the
 * lab: each case's policies (as plain manifests), the steps that change them or relabel
 * namespaces and pods between probes, and the truth table every probe must produce.
 * Where an upstream case relies on pod IPs in an ipBlock, the expectation follows Dataplane V2:
 * an ipBlock never matches pod traffic.
 */
import { Reachability, ALL_PODS } from './reachability.js';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type Manifest = Record<string, unknown>;

export interface Probe {
  port: number | string;
  protocol: Protocol;
  family?: 4 | 6;
  expect: Reachability;
  /** Probe only from these pods (default: all). */
  from?: string;
}

export interface Step {
  /** What the step does, for the test's messages. */
  does: string;
  apply?: Manifest[];
  delete?: Manifest[];
  probes: Probe[];
}

export interface NetpolCase {
  name: string;
  steps: Step[];
  /** Model objects the case relabels, re-applied as they were once it ends. */
  restores?: { kind: 'Namespace' | 'Pod'; key: string }[];
  /** Objects the case created that are not in the model, deleted once it ends. */
  extra?: Manifest[];
}

export interface CaseContext {
  cidr4: string;
  cidr6: string;
  /** Model objects as in examples/e2e-model/cluster.yaml, by "Kind/key". */
  model: Map<string, Manifest>;
}

type Selector = {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
};

export function policy(namespace: string, name: string, spec: Record<string, unknown>): Manifest {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace, name }, spec };
}

const pod = (name: string): Selector => ({ matchLabels: { pod: name } });
const ns = (name: string): Selector => ({ matchLabels: { ns: name } });
const all: Selector = {};

/** The same table on port 80 over TCP, UDP and SCTP: for cases whose rules name no port. */
function everyProtocol(expect: Reachability, port: number | string = 80): Probe[] {
  return (['TCP', 'UDP', 'SCTP'] as const).map((protocol) => ({ port, protocol, expect }));
}

const R = (connected: boolean): Reachability => new Reachability(connected);

function relabel(ctx: CaseContext, kind: 'Namespace' | 'Pod', key: string, labels: Record<string, string>): Manifest {
  const o = ctx.model.get(`${kind}/${key}`);
  if (!o) throw new Error(`model has no ${kind} ${key}`);
  const copy = JSON.parse(JSON.stringify(o)) as { metadata: { labels?: Record<string, string> } };
  copy.metadata.labels = { ...(copy.metadata.labels ?? {}), ...labels };
  return copy as unknown as Manifest;
}

export function netpolCases(ctx: CaseContext): NetpolCase[] {
  const toXA = { namespace: 'x', pod: 'a' };
  const fromXA = toXA;
  return [
    {
      name: "should support a 'default-deny-ingress' policy",
      steps: [
        {
          does: 'deny all ingress in x',
          apply: [policy('x', 'deny-ingress', { podSelector: all, policyTypes: ['Ingress'] })],
          probes: [
            ...everyProtocol(R(true).expect(undefined, { namespace: 'x' }, false).allowLoopback()),
            {
              port: 80,
              protocol: 'TCP',
              family: 6,
              expect: R(true).expect(undefined, { namespace: 'x' }, false).allowLoopback(),
            },
          ],
        },
      ],
    },
    {
      name: "should support a 'default-deny-all' policy",
      steps: [
        {
          does: 'deny all ingress and egress in x',
          apply: [policy('x', 'deny-all', { podSelector: all, policyTypes: ['Ingress', 'Egress'] })],
          probes: [
            ...everyProtocol(
              R(true)
                .expect(undefined, { namespace: 'x' }, false)
                .expect({ namespace: 'x' }, undefined, false)
                .allowLoopback(),
            ),
            {
              port: 81,
              protocol: 'UDP',
              family: 6,
              expect: R(true)
                .expect(undefined, { namespace: 'x' }, false)
                .expect({ namespace: 'x' }, undefined, false)
                .allowLoopback(),
            },
          ],
        },
      ],
    },
    {
      name: 'should support an allow-all policy stacked on a default-deny policy',
      steps: [
        {
          does: 'deny all ingress in x, then allow all ingress in x',
          apply: [
            policy('x', 'deny-ingress', { podSelector: all, policyTypes: ['Ingress'] }),
            policy('x', 'allow-all', { podSelector: all, ingress: [{}] }),
          ],
          probes: everyProtocol(R(true)),
        },
      ],
    },
    {
      name: 'should enforce policy to allow traffic from pods within server namespace based on PodSelector',
      steps: [
        {
          does: 'x/a accepts only x/b',
          apply: [
            policy('x', 'x-a-from-b', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }] }] }),
          ],
          probes: everyProtocol(
            R(true).expect(undefined, toXA, false).expect({ namespace: 'x', pod: 'b' }, toXA, true).allowLoopback(),
          ),
        },
      ],
    },
    {
      name: 'should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector',
      steps: [
        {
          does: 'x/a accepts only namespace y',
          apply: [
            policy('x', 'x-a-from-ns-y', {
              podSelector: pod('a'),
              ingress: [{ from: [{ namespaceSelector: ns('y') }] }],
            }),
          ],
          probes: [
            ...everyProtocol(
              R(true).expect(undefined, toXA, false).expect({ namespace: 'y' }, toXA, true).allowLoopback(),
            ),
            {
              port: 80,
              protocol: 'TCP',
              family: 6,
              expect: R(true).expect(undefined, toXA, false).expect({ namespace: 'y' }, toXA, true).allowLoopback(),
            },
          ],
        },
      ],
    },
    {
      name: 'should enforce policy based on NamespaceSelector using the kubernetes.io/metadata.name label',
      steps: [
        {
          does: 'x/a accepts only the namespace named z',
          apply: [
            policy('x', 'x-a-from-z', {
              podSelector: pod('a'),
              ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'z' } } }] }],
            }),
          ],
          probes: [
            {
              port: 80,
              protocol: 'TCP',
              expect: R(true).expect(undefined, toXA, false).expect({ namespace: 'z' }, toXA, true).allowLoopback(),
            },
          ],
        },
      ],
    },
    {
      name: 'should enforce policy based on PodSelector with MatchExpressions',
      steps: [
        {
          does: 'x/a accepts pods with pod in (b)',
          apply: [
            policy('x', 'x-a-from-b-expr', {
              podSelector: pod('a'),
              ingress: [
                { from: [{ podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b'] }] } }] },
              ],
            }),
          ],
          probes: [
            {
              port: 80,
              protocol: 'TCP',
              expect: R(true)
                .expect(undefined, toXA, false)
                .expect({ namespace: 'x', pod: 'b' }, toXA, true)
                .allowLoopback(),
            },
          ],
        },
      ],
    },
    {
      name: 'should enforce policy based on NamespaceSelector with MatchExpressions',
      steps: [
        {
          does: 'x/a accepts namespaces with ns in (y)',
          apply: [
            policy('x', 'x-a-from-y-expr', {
              podSelector: pod('a'),
              ingress: [
                { from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'In', values: ['y'] }] } }] },
              ],
            }),
          ],
          probes: [
            {
              port: 80,
              protocol: 'TCP',
              expect: R(true).expect(undefined, toXA, false).expect({ namespace: 'y' }, toXA, true).allowLoopback(),
            },
          ],
        },
      ],
    },
    {
      name: 'should enforce policy based on PodSelector or NamespaceSelector',
      steps: [
        {
          does: 'x/a accepts pod in (b) of its namespace, or any pod of a namespace with ns notin (x)',
          apply: [
            policy('x', 'x-a-pod-or-ns', {
              podSelector: pod('a'),
              ingress: [
                {
                  from: [
                    { podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b'] }] } },
                    { namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] } },
                  ],
                },
              ],
            }),
          ],
          probes: [
            {
              port: 80,
              protocol: 'TCP',
              expect: R(true)
                .expect({ namespace: 'x' }, toXA, false)
                .expect({ namespace: 'x', pod: 'b' }, toXA, true)
                .allowLoopback(),
            },
          ],
        },
      ],
    },
    {
      name: 'should enforce policy based on PodSelector and NamespaceSelector',
      steps: [
        {
          does: 'x/a accepts pods in (b) of namespaces with ns notin (x)',
          apply: [
            policy('x', 'x-a-pod-and-ns', {
              podSelector: pod('a'),
              ingress: [
                {
                  from: [
                    {
                      podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b'] }] },
                      namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] },
                    },
                  ],
                },
              ],
            }),
          ],
          probes: everyProtocol(
            R(true)
              .expect(undefined, toXA, false)
              .expect({ namespace: 'y', pod: 'b' }, toXA, true)
              .expect({ namespace: 'z', pod: 'b' }, toXA, true)
              .allowLoopback(),
          ),
        },
      ],
    },
    {
      name: 'should enforce policy based on Multiple PodSelectors and NamespaceSelectors',
      steps: [
        {
          does: 'x/a accepts pods in (a, b) of namespaces in (y, z)',
          apply: [
            policy('x', 'x-a-multi', {
              podSelector: pod('a'),
              ingress: [
                {
                  from: [
                    {
                      podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['a', 'b'] }] },
                      namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'In', values: ['y', 'z'] }] },
                    },
                  ],
                },
              ],
            }),
          ],
          probes: [
            {
              port: 80,
              protocol: 'TCP',
              expect: R(true)
                .expect(undefined, toXA, false)
                .expect({ namespace: 'y', pod: 'a' }, toXA, true)
                .expect({ namespace: 'y', pod: 'b' }, toXA, true)
                .expect({ namespace: 'z', pod: 'a' }, toXA, true)
                .expect({ namespace: 'z', pod: 'b' }, toXA, true)
                .allowLoopback(),
            },
          ],
        },
      ],
    },
    {
      name: 'should enforce policy based on Ports',
      steps: [
        {
          does: 'x/a accepts namespace y on TCP port 81 only',
          apply: [
            policy('x', 'x-a-81-from-y', {
              podSelector: pod('a'),
              ingress: [{ from: [{ namespaceSelector: ns('y') }], ports: [{ port: 81, protocol: 'TCP' }] }],
            }),
          ],
          probes: [
            { port: 80, protocol: 'TCP', expect: R(true).expect(undefined, toXA, false).allowLoopback() },
            {
              port: 81,
              protocol: 'TCP',
              expect: R(true).expect(undefined, toXA, false).expect({ namespace: 'y' }, toXA, true).allowLoopback(),
            },
            { port: 81, protocol: 'UDP', expect: R(true).expect(undefined, toXA, false).allowLoopback() },
          ],
        },
      ],
    },
    {
      name: 'should allow ingress access on one named port',
      steps: [
        {
          does: 'pods of x accept everyone on serve-81-tcp only',
          apply: [policy('x', 'x-named-81', { podSelector: all, ingress: [{ ports: [{ port: 'serve-81-tcp' }] }] })],
          probes: [
            { port: 81, protocol: 'TCP', expect: R(true) },
            { port: 'serve-81-tcp', protocol: 'TCP', expect: R(true) },
            { port: 80, protocol: 'TCP', expect: R(true).expect(undefined, { namespace: 'x' }, false).allowLoopback() },
          ],
        },
      ],
    },
    {
      name: 'should allow ingress access on one named UDP port',
      steps: [
        {
          does: 'pods of x accept everyone on serve-80-udp only',
          apply: [
            policy('x', 'x-named-udp-80', {
              podSelector: all,
              ingress: [{ ports: [{ port: 'serve-80-udp', protocol: 'UDP' }] }],
            }),
          ],
          probes: [
            { port: 80, protocol: 'UDP', expect: R(true) },
            { port: 81, protocol: 'UDP', expect: R(true).expect(undefined, { namespace: 'x' }, false).allowLoopback() },
            { port: 80, protocol: 'TCP', expect: R(true).expect(undefined, { namespace: 'x' }, false).allowLoopback() },
          ],
        },
      ],
    },
    {
      name: 'should enforce multiple, stacked policies with overlapping podSelectors',
      steps: [
        {
          does: 'two policies open x/a to namespace y, one on port 80, one on port 81',
          apply: [
            policy('x', 'x-a-80-from-y', {
              podSelector: pod('a'),
              ingress: [{ from: [{ namespaceSelector: ns('y') }], ports: [{ port: 80 }] }],
            }),
            policy('x', 'x-a-81-from-y', {
              podSelector: { matchExpressions: [{ key: 'pod', operator: 'Exists' }] },
              ingress: [{ from: [{ namespaceSelector: ns('y') }], ports: [{ port: 81 }] }],
            }),
          ],
          probes: [
            // Every pod of x is isolated by the second policy; only x/a also opens port 80 to y.
            {
              port: 80,
              protocol: 'TCP',
              expect: R(true)
                .expect(undefined, { namespace: 'x' }, false)
                .expect({ namespace: 'y' }, toXA, true)
                .allowLoopback(),
            },
            {
              port: 81,
              protocol: 'TCP',
              expect: R(true)
                .expect(undefined, { namespace: 'x' }, false)
                .expect({ namespace: 'y' }, { namespace: 'x' }, true)
                .allowLoopback(),
            },
          ],
        },
      ],
    },
    {
      name: 'should enforce policy to allow ingress traffic from pods in all namespaces',
      steps: [
        {
          does: 'x/a accepts every pod of every namespace',
          apply: [
            policy('x', 'x-a-from-all-ns', {
              podSelector: pod('a'),
              ingress: [{ from: [{ namespaceSelector: all }] }],
            }),
          ],
          probes: [{ port: 80, protocol: 'TCP', expect: R(true) }],
        },
      ],
    },
    {
      name: "should support a 'default-deny-egress' policy",
      steps: [
        {
          does: 'deny all egress from x',
          apply: [policy('x', 'deny-egress', { podSelector: all, policyTypes: ['Egress'] })],
          probes: everyProtocol(R(true).expect({ namespace: 'x' }, undefined, false).allowLoopback()),
        },
      ],
    },
    {
      name: 'should allow egress access on one named port',
      steps: [
        {
          does: 'pods of x may send only to serve-80-tcp',
          apply: [
            policy('x', 'x-egress-named-80', {
              podSelector: all,
              policyTypes: ['Egress'],
              egress: [{ ports: [{ port: 'serve-80-tcp' }] }],
            }),
          ],
          probes: [
            { port: 80, protocol: 'TCP', expect: R(true) },
            { port: 81, protocol: 'TCP', expect: R(true).expect({ namespace: 'x' }, undefined, false).allowLoopback() },
            { port: 80, protocol: 'UDP', expect: R(true).expect({ namespace: 'x' }, undefined, false).allowLoopback() },
          ],
        },
      ],
    },
    {
      name: 'should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector',
      steps: [
        {
          does: 'x/a may send only to y/b',
          apply: [
            policy('x', 'x-a-to-y-b', {
              podSelector: pod('a'),
              policyTypes: ['Egress'],
              egress: [{ to: [{ namespaceSelector: ns('y'), podSelector: pod('b') }] }],
            }),
          ],
          probes: everyProtocol(
            R(true).expect(fromXA, undefined, false).expect(fromXA, { namespace: 'y', pod: 'b' }, true).allowLoopback(),
          ),
        },
      ],
    },
    {
      name: 'should work with Ingress, Egress specified together',
      steps: [
        {
          does: 'x/a accepts only x/b and sends only to namespace y',
          apply: [
            policy('x', 'x-a-both', {
              podSelector: pod('a'),
              policyTypes: ['Ingress', 'Egress'],
              ingress: [{ from: [{ podSelector: pod('b') }] }],
              egress: [{ to: [{ namespaceSelector: ns('y') }] }],
            }),
          ],
          probes: [
            {
              port: 80,
              protocol: 'TCP',
              expect: R(true)
                .expect(undefined, toXA, false)
                .expect({ namespace: 'x', pod: 'b' }, toXA, true)
                .expect(fromXA, undefined, false)
                .expect(fromXA, { namespace: 'y' }, true)
                .allowLoopback(),
            },
          ],
        },
      ],
    },
    {
      name: 'should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)',
      steps: [
        {
          does: 'x/a may send nowhere while everything in y accepts everyone',
          apply: [
            policy('x', 'x-a-deny-egress', { podSelector: pod('a'), policyTypes: ['Egress'] }),
            policy('y', 'y-allow-all', { podSelector: all, ingress: [{}] }),
          ],
          probes: [{ port: 80, protocol: 'TCP', expect: R(true).expect(fromXA, undefined, false).allowLoopback() }],
        },
      ],
    },
    {
      name: 'should enforce ingress policy allowing any port traffic to a server on a specific protocol',
      steps: [
        {
          does: 'x/a accepts every UDP port and nothing else',
          apply: [policy('x', 'x-a-any-udp', { podSelector: pod('a'), ingress: [{ ports: [{ protocol: 'UDP' }] }] })],
          probes: [
            { port: 80, protocol: 'UDP', expect: R(true) },
            { port: 81, protocol: 'UDP', expect: R(true) },
            { port: 80, protocol: 'TCP', expect: R(true).expect(undefined, toXA, false).allowLoopback() },
          ],
        },
      ],
    },
    {
      name: 'should support a port range with endPort',
      steps: [
        {
          does: 'x/a accepts namespace y on TCP ports 80-81',
          apply: [
            policy('x', 'x-a-range', {
              podSelector: pod('a'),
              ingress: [
                { from: [{ namespaceSelector: ns('y') }], ports: [{ protocol: 'TCP', port: 80, endPort: 81 }] },
              ],
            }),
          ],
          probes: [
            {
              port: 80,
              protocol: 'TCP',
              expect: R(true).expect(undefined, toXA, false).expect({ namespace: 'y' }, toXA, true).allowLoopback(),
            },
            {
              port: 81,
              protocol: 'TCP',
              expect: R(true).expect(undefined, toXA, false).expect({ namespace: 'y' }, toXA, true).allowLoopback(),
            },
          ],
        },
      ],
    },
    {
      name: 'should not allow access by TCP when a policy specifies only UDP',
      steps: [
        {
          does: 'x/a accepts UDP 81 only',
          apply: [
            policy('x', 'x-a-udp-81', { podSelector: pod('a'), ingress: [{ ports: [{ port: 81, protocol: 'UDP' }] }] }),
          ],
          probes: [
            { port: 81, protocol: 'UDP', expect: R(true) },
            { port: 81, protocol: 'TCP', expect: R(true).expect(undefined, toXA, false).allowLoopback() },
          ],
        },
      ],
    },
    {
      name: "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP'",
      steps: [
        {
          does: 'x/a accepts SCTP 80 only',
          apply: [
            policy('x', 'x-a-sctp-80', {
              podSelector: pod('a'),
              ingress: [{ ports: [{ port: 80, protocol: 'SCTP' }] }],
            }),
          ],
          probes: [
            { port: 80, protocol: 'SCTP', expect: R(true) },
            { port: 80, protocol: 'TCP', expect: R(true).expect(undefined, toXA, false).allowLoopback() },
            { port: 81, protocol: 'SCTP', expect: R(true).expect(undefined, toXA, false).allowLoopback() },
          ],
        },
      ],
    },
    {
      name: 'should enforce policy based on Ports over SCTP',
      steps: [
        {
          does: 'x/a accepts namespace y on SCTP 81',
          apply: [
            policy('x', 'x-a-sctp-81-from-y', {
              podSelector: pod('a'),
              ingress: [{ from: [{ namespaceSelector: ns('y') }], ports: [{ port: 81, protocol: 'SCTP' }] }],
            }),
          ],
          probes: [
            {
              port: 81,
              protocol: 'SCTP',
              expect: R(true).expect(undefined, toXA, false).expect({ namespace: 'y' }, toXA, true).allowLoopback(),
            },
            {
              port: 81,
              protocol: 'SCTP',
              family: 6,
              expect: R(true).expect(undefined, toXA, false).expect({ namespace: 'y' }, toXA, true).allowLoopback(),
            },
            { port: 80, protocol: 'SCTP', expect: R(true).expect(undefined, toXA, false).allowLoopback() },
          ],
        },
      ],
    },
    {
      name: 'should not select pods with an ipBlock covering pod IPs (Dataplane V2; upstream expects them allowed)',
      steps: [
        {
          does: 'x/a accepts the whole pod range and 0.0.0.0/0 by ipBlock, which selects no pod',
          apply: [
            policy('x', 'x-a-from-cidr', {
              podSelector: pod('a'),
              ingress: [
                {
                  from: [
                    { ipBlock: { cidr: ctx.cidr4 } },
                    { ipBlock: { cidr: '0.0.0.0/0', except: [ctx.cidr4] } },
                    { ipBlock: { cidr: '::/0' } },
                  ],
                },
              ],
            }),
          ],
          probes: [
            { port: 80, protocol: 'TCP', expect: R(true).expect(undefined, toXA, false).allowLoopback() },
            { port: 80, protocol: 'TCP', family: 6, expect: R(true).expect(undefined, toXA, false).allowLoopback() },
          ],
        },
      ],
    },
    {
      name: 'should not allow egress to pods through an ipBlock (Dataplane V2; upstream expects them allowed)',
      steps: [
        {
          does: 'x/a may send to 0.0.0.0/0 by ipBlock, which selects no pod',
          apply: [
            policy('x', 'x-a-to-world', {
              podSelector: pod('a'),
              policyTypes: ['Egress'],
              egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0' } }] }],
            }),
          ],
          probes: [{ port: 80, protocol: 'TCP', expect: R(true).expect(fromXA, undefined, false).allowLoopback() }],
        },
      ],
    },
    {
      name: 'should enforce updated policy',
      steps: [
        {
          does: 'x/a accepts only x/b',
          apply: [
            policy('x', 'x-a-updated', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }] }] }),
          ],
          probes: [
            {
              port: 80,
              protocol: 'TCP',
              expect: R(true)
                .expect(undefined, toXA, false)
                .expect({ namespace: 'x', pod: 'b' }, toXA, true)
                .allowLoopback(),
            },
          ],
        },
        {
          does: 'the same policy now accepts only x/c',
          apply: [
            policy('x', 'x-a-updated', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('c') }] }] }),
          ],
          probes: [
            {
              port: 80,
              protocol: 'TCP',
              expect: R(true)
                .expect(undefined, toXA, false)
                .expect({ namespace: 'x', pod: 'c' }, toXA, true)
                .allowLoopback(),
            },
          ],
        },
      ],
    },
    {
      name: 'should allow ingress access from updated namespace',
      restores: [{ kind: 'Namespace', key: 'y' }],
      steps: [
        {
          does: 'x/a accepts namespaces labelled ns2=updated (none yet)',
          apply: [
            policy('x', 'x-a-from-updated-ns', {
              podSelector: pod('a'),
              ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns2: 'updated' } } }] }],
            }),
          ],
          probes: everyProtocol(R(true).expect(undefined, toXA, false).allowLoopback()),
        },
        {
          does: 'namespace y gets ns2=updated',
          apply: [relabel(ctx, 'Namespace', 'y', { ns2: 'updated' })],
          probes: everyProtocol(
            R(true).expect(undefined, toXA, false).expect({ namespace: 'y' }, toXA, true).allowLoopback(),
          ),
        },
      ],
    },
    {
      name: 'should allow ingress access from updated pod',
      restores: [{ kind: 'Pod', key: 'x/b' }],
      steps: [
        {
          does: 'x/a accepts pods of x labelled pod2=updated (none yet)',
          apply: [
            policy('x', 'x-a-from-updated-pod', {
              podSelector: pod('a'),
              ingress: [{ from: [{ podSelector: { matchLabels: { pod2: 'updated' } } }] }],
            }),
          ],
          probes: [{ port: 80, protocol: 'TCP', expect: R(true).expect(undefined, toXA, false).allowLoopback() }],
        },
        {
          does: 'x/b gets pod2=updated',
          apply: [relabel(ctx, 'Pod', 'x/b', { pod2: 'updated' })],
          probes: everyProtocol(
            R(true).expect(undefined, toXA, false).expect({ namespace: 'x', pod: 'b' }, toXA, true).allowLoopback(),
          ),
        },
      ],
    },
    {
      name: 'should deny ingress access to updated pod',
      restores: [{ kind: 'Pod', key: 'x/a' }],
      steps: [
        {
          does: 'pods labelled target=isolated accept nothing (none yet)',
          apply: [
            policy('x', 'deny-isolated', {
              podSelector: { matchLabels: { target: 'isolated' } },
              policyTypes: ['Ingress'],
            }),
          ],
          probes: [{ port: 80, protocol: 'TCP', expect: R(true) }],
        },
        {
          does: 'x/a gets target=isolated',
          apply: [relabel(ctx, 'Pod', 'x/a', { target: 'isolated' })],
          probes: everyProtocol(R(true).expect(undefined, toXA, false).allowLoopback()),
        },
      ],
    },
    {
      name: 'should stop enforcing policies after they are deleted',
      steps: [
        {
          does: 'deny all ingress in x',
          apply: [policy('x', 'deny-then-delete', { podSelector: all, policyTypes: ['Ingress'] })],
          probes: [
            { port: 80, protocol: 'TCP', expect: R(true).expect(undefined, { namespace: 'x' }, false).allowLoopback() },
          ],
        },
        {
          does: 'delete the policy',
          delete: [policy('x', 'deny-then-delete', { podSelector: all, policyTypes: ['Ingress'] })],
          probes: everyProtocol(R(true)),
        },
      ],
    },
    {
      name: 'should enforce policy on a pod created after the policy',
      extra: [newPod(ctx, 'x', 'd', { pod: 'b' })],
      steps: [
        {
          does: 'x/a accepts only pods labelled pod=b',
          apply: [
            policy('x', 'x-a-from-b-late', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: pod('b') }] }] }),
          ],
          probes: [
            {
              port: 80,
              protocol: 'TCP',
              expect: R(true)
                .expect(undefined, toXA, false)
                .expect({ namespace: 'x', pod: 'b' }, toXA, true)
                .allowLoopback(),
            },
          ],
        },
        {
          does: 'a new pod x/d labelled pod=b',
          apply: [newPod(ctx, 'x', 'd', { pod: 'b' })],
          probes: [
            {
              port: 80,
              protocol: 'TCP',
              from: 'x/',
              expect: new Reachability(true, [...ALL_PODS, 'x/d'])
                .expect(undefined, toXA, false)
                .expect({ namespace: 'x', pod: 'b' }, toXA, true)
                .expect({ namespace: 'x', pod: 'd' }, toXA, true)
                .allowLoopback(),
            },
          ],
        },
      ],
    },
  ];
}

/** A pod shaped like the model's pods (same ports) under a new name. */
function newPod(ctx: CaseContext, namespace: string, name: string, labels: Record<string, string>): Manifest {
  const tmpl = ctx.model.get(`Pod/${namespace}/a`);
  if (!tmpl) throw new Error(`model has no pod ${namespace}/a`);
  const copy = JSON.parse(JSON.stringify(tmpl)) as { metadata: Record<string, unknown> };
  copy.metadata = { name, namespace, labels };
  return copy as unknown as Manifest;
}
