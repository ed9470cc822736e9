/**
 * The API server's validation of the objects weir reads: every rule, with the field path and
 * the message the API server (1.34) gives, and the objects it accepts left alone.
 */
import { formatFieldError, validateObject } from '../../../agent/store/validate.js';

const QN =
  "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LV =
  "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const SUB =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LBL =
  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const CIDR = 'must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)';

const errs = (o: unknown): string[] => validateObject(o).map(formatFieldError);
const netpol = (spec: Record<string, unknown>, meta: Record<string, unknown> = {}): unknown => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'p', namespace: 'x', ...meta },
  spec,
});
const pod = (labels: Record<string, string>, ports: unknown[] = []): unknown => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'a', namespace: 'x', labels },
  spec: { containers: [{ name: 'c', image: 'i', ports }] },
});
const from = (peers: unknown[]): Record<string, unknown> => ({ podSelector: {}, ingress: [{ from: peers }] });
const ports = (p: unknown[]): Record<string, unknown> => ({ podSelector: {}, ingress: [{ ports: p }] });

describe('objects the API server accepts', () => {
  it.each([
    [
      'a policy with every kind of peer and port',
      netpol({
        podSelector: { matchLabels: { 'app.kubernetes.io/name': 'web' } },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [
          {
            from: [{ podSelector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['fe', ''] }] } }],
            ports: [{ port: 'http' }, { protocol: 'UDP', port: 53, endPort: 60 }],
          },
        ],
        egress: [
          {
            to: [
              { ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } },
              { ipBlock: { cidr: '2001:db8::/32' } },
              { namespaceSelector: {}, podSelector: {} },
            ],
            ports: [{ protocol: 'SCTP' }],
          },
        ],
      }),
    ],
    [
      'a pod with prefixed labels and an empty value',
      pod({ 'example.com/role': 'db', 'x_y.z-1': '', app: 'A.b_c-9' }, [
        { name: 'http', containerPort: 80, protocol: 'TCP' },
      ]),
    ],
    ['a namespace', { kind: 'Namespace', metadata: { name: 'team-a', labels: { env: 'prod' } } }],
    ['a node', { kind: 'Node', metadata: { name: 'node-1.example.com' } }],
    ['a kind weir does not read', { kind: 'ConfigMap', metadata: { name: 'NOT VALID' } }],
  ])('%s', (_n, o) => {
    expect(errs(o)).toEqual([]);
  });
});

describe('objects the API server refuses, with the field path and message', () => {
  it.each([
    // label keys
    ['a key with "="', pod({ 'role=db': 'x' }), [`metadata.labels: Invalid value: "role=db": ${QN}`]],
    [
      'a key too long',
      pod({ ['k'.repeat(64)]: 'x' }),
      [`metadata.labels: Invalid value: "${'k'.repeat(64)}": name part must be no more than 63 characters`],
    ],
    ['a key starting with "-"', pod({ '-a': 'x' }), [`metadata.labels: Invalid value: "-a": ${QN}`]],
    ['an empty prefix', pod({ '/a': 'x' }), ['metadata.labels: Invalid value: "/a": prefix part must be non-empty']],
    [
      'a prefix that is no DNS subdomain',
      pod({ 'Example.com/a': 'x' }),
      [`metadata.labels: Invalid value: "Example.com/a": prefix part ${SUB}`],
    ],
    [
      'an empty name after the prefix',
      pod({ 'example.com/': 'x' }),
      ['metadata.labels: Invalid value: "example.com/": name part must be non-empty'],
    ],
    [
      'two slashes',
      pod({ 'a/b/c': 'x' }),
      [expect.stringContaining('metadata.labels: Invalid value: "a/b/c": a qualified name must consist of')],
    ],
    // label values
    ['a value with "="', pod({ role: 'db=x' }), [`metadata.labels: Invalid value: "db=x": ${LV}`]],
    [
      'a value too long',
      pod({ role: 'v'.repeat(64) }),
      [`metadata.labels: Invalid value: "${'v'.repeat(64)}": must be no more than 63 characters`],
    ],
    ['a value ending in "."', pod({ role: 'db.' }), [`metadata.labels: Invalid value: "db.": ${LV}`]],
    // names
    [
      'an upper-case namespace name',
      { kind: 'Namespace', metadata: { name: 'Team' } },
      [`metadata.name: Invalid value: "Team": ${LBL}`],
    ],
    [
      'a namespace name too long',
      { kind: 'Namespace', metadata: { name: 'n'.repeat(64) } },
      [`metadata.name: Invalid value: "${'n'.repeat(64)}": must be no more than 63 characters`],
    ],
    [
      'a policy without a name',
      netpol({ podSelector: {} }, { name: '' }),
      ['metadata.name: Required value: name or generateName is required'],
    ],
    [
      'a policy name with "_"',
      netpol({ podSelector: {} }, { name: 'a_b' }),
      [`metadata.name: Invalid value: "a_b": ${SUB}`],
    ],
    [
      'a policy in a namespace with an invalid name',
      netpol({ podSelector: {} }, { namespace: 'a.b' }),
      [`metadata.namespace: Invalid value: "a.b": ${LBL}`],
    ],
    [
      'policy labels',
      netpol({ podSelector: {} }, { labels: { k: 'a b' } }),
      [`metadata.labels: Invalid value: "a b": ${LV}`],
    ],
    // selectors
    [
      'matchLabels key',
      netpol({ podSelector: { matchLabels: { 'a=b': 'c' } } }),
      [`spec.podSelector.matchLabels: Invalid value: "a=b": ${QN}`],
    ],
    [
      'matchLabels value',
      netpol(from([{ podSelector: { matchLabels: { a: 'b=c' } } }])),
      [`spec.ingress[0].from[0].podSelector.matchLabels: Invalid value: "b=c": ${LV}`],
    ],
    [
      'an unknown operator',
      netpol(from([{ namespaceSelector: { matchExpressions: [{ key: 'a', operator: 'Equals', values: ['b'] }] } }])),
      [
        'spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].operator: Invalid value: "Equals": not a valid selector operator',
      ],
    ],
    [
      'In without values',
      netpol({ podSelector: { matchExpressions: [{ key: 'a', operator: 'In', values: [] }] } }),
      [
        "spec.podSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
      ],
    ],
    [
      'Exists with values',
      netpol({ podSelector: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['b'] }] } }),
      [
        "spec.podSelector.matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
      ],
    ],
    [
      'an expression key',
      netpol({ podSelector: { matchExpressions: [{ key: 'a b', operator: 'Exists' }] } }),
      [`spec.podSelector.matchExpressions[0].key: Invalid value: "a b": ${QN}`],
    ],
    [
      'an expression value',
      netpol({ podSelector: { matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['ok', 'no!'] }] } }),
      [`spec.podSelector.matchExpressions[0].values[1]: Invalid value: "no!": ${LV}`],
    ],
    // ports
    [
      'protocol tcp',
      netpol({ podSelector: {}, ingress: [{ ports: [{ port: 80 }, { protocol: 'tcp', port: 81 }] }] }),
      ['spec.ingress[0].ports[1].protocol: Unsupported value: "tcp": supported values: "SCTP", "TCP", "UDP"'],
    ],
    [
      'protocol ICMP in egress',
      netpol({ podSelector: {}, egress: [{ ports: [{ protocol: 'ICMP' }] }] }),
      ['spec.egress[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"'],
    ],
    [
      'port 0',
      netpol(ports([{ port: 0 }])),
      ['spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive'],
    ],
    [
      'port 65536',
      netpol(ports([{ port: 65536 }])),
      ['spec.ingress[0].ports[0].port: Invalid value: 65536: must be between 1 and 65535, inclusive'],
    ],
    [
      'endPort below port',
      netpol(ports([{ port: 90, endPort: 80 }])),
      ['spec.ingress[0].ports[0].endPort: Invalid value: 90: must be greater than or equal to `port`'],
    ],
    [
      'endPort out of range',
      netpol(ports([{ port: 90, endPort: 70000 }])),
      ['spec.ingress[0].ports[0].endPort: Invalid value: 70000: must be between 1 and 65535, inclusive'],
    ],
    [
      'endPort with a named port',
      netpol(ports([{ port: 'http', endPort: 90 }])),
      ['spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is non-numeric'],
    ],
    [
      'endPort without port',
      netpol(ports([{ endPort: 90 }])),
      ['spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is not specified'],
    ],
    [
      'a port name too long',
      netpol(ports([{ port: 'abcdefghijklmnop' }])),
      ['spec.ingress[0].ports[0].port: Invalid value: "abcdefghijklmnop": must be no more than 15 characters'],
    ],
    [
      'a port name with upper case',
      netpol(ports([{ port: 'Http' }])),
      [
        'spec.ingress[0].ports[0].port: Invalid value: "Http": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)',
      ],
    ],
    [
      'a port name with "--"',
      netpol(ports([{ port: 'a--b' }])),
      ['spec.ingress[0].ports[0].port: Invalid value: "a--b": must not contain consecutive hyphens'],
    ],
    [
      'a port name without a letter',
      netpol(ports([{ port: '80-81' }])),
      ['spec.ingress[0].ports[0].port: Invalid value: "80-81": must contain at least one letter (a-z)'],
    ],
    [
      'a port name ending in "-"',
      netpol(ports([{ port: 'http-' }])),
      ['spec.ingress[0].ports[0].port: Invalid value: "http-": must not begin or end with a hyphen'],
    ],
    // peers and ipBlocks
    ['an empty peer', netpol(from([{}])), ['spec.ingress[0].from[0]: Required value: must specify a peer']],
    [
      'ipBlock and a selector',
      netpol(from([{ ipBlock: { cidr: '10.0.0.0/8' }, namespaceSelector: {} }])),
      ['spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and another peer'],
    ],
    [
      'a cidr without a prefix length',
      netpol({ podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '192.0.2.1' } }] }] }),
      [`spec.egress[0].to[0].ipBlock.cidr: Invalid value: "192.0.2.1": ${CIDR}`],
    ],
    [
      'a prefix length too long',
      netpol(from([{ ipBlock: { cidr: '10.0.0.0/33' } }])),
      [`spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.0/33": ${CIDR}`],
    ],
    [
      'not an address',
      netpol(from([{ ipBlock: { cidr: 'ten/8' } }])),
      [`spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "ten/8": ${CIDR}`],
    ],
    [
      'an IPv6 prefix length too long',
      netpol(from([{ ipBlock: { cidr: '2001:db8::/129' } }])),
      [`spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "2001:db8::/129": ${CIDR}`],
    ],
    [
      'an empty cidr',
      netpol(from([{ ipBlock: { cidr: '' } }])),
      ['spec.ingress[0].from[0].ipBlock.cidr: Required value'],
    ],
    [
      'an except without a prefix length',
      netpol(from([{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.0.0.1'] } }])),
      [`spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "10.0.0.1": ${CIDR}`],
    ],
    [
      'an except outside the cidr',
      netpol(from([{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16', '11.0.0.0/16'] } }])),
      ['spec.ingress[0].from[0].ipBlock.except[1]: Invalid value: "11.0.0.0/16": must be a strict subset of `cidr`'],
    ],
    [
      'an except equal to the cidr',
      netpol(from([{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.0.0.0/8'] } }])),
      ['spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "10.0.0.0/8": must be a strict subset of `cidr`'],
    ],
    [
      'an except of the other family',
      netpol(from([{ ipBlock: { cidr: '10.0.0.0/8', except: ['2001:db8::/64'] } }])),
      ['spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "2001:db8::/64": must be a strict subset of `cidr`'],
    ],
    // policyTypes
    [
      'an unknown policyType',
      netpol({ podSelector: {}, policyTypes: ['Ingress', 'ingress'] }),
      ['spec.policyTypes[1]: Unsupported value: "ingress": supported values: "Egress", "Ingress"'],
    ],
    [
      'three policyTypes',
      netpol({ podSelector: {}, policyTypes: ['Ingress', 'Egress', 'Ingress'] }),
      ['spec.policyTypes: Invalid value: "Ingress, Egress, Ingress": may not specify more than two policyTypes'],
    ],
    // pod container ports
    [
      'a container port 0',
      pod({}, [{ containerPort: 0 }]),
      ['spec.containers[0].ports[0].containerPort: Invalid value: 0: must be between 1 and 65535, inclusive'],
    ],
    [
      'a container port protocol udp',
      pod({}, [{ containerPort: 53, protocol: 'udp' }]),
      ['spec.containers[0].ports[0].protocol: Unsupported value: "udp": supported values: "SCTP", "TCP", "UDP"'],
    ],
    [
      'a container port name',
      pod({}, [{ containerPort: 80, name: 'HTTP' }]),
      [
        'spec.containers[0].ports[0].name: Invalid value: "HTTP": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)',
        'spec.containers[0].ports[0].name: Invalid value: "HTTP": must contain at least one letter (a-z)',
      ],
    ],
  ])('%s', (_n, o, want) => {
    expect(errs(o)).toEqual(want);
  });
});

describe('Services and EndpointSlices as the API server validates them', () => {
  const svc = (spec: Record<string, unknown>, name = 'web'): unknown => ({
    kind: 'Service',
    metadata: { name, namespace: 'shop' },
    spec,
  });
  const slice = (o: Record<string, unknown>): unknown => ({
    kind: 'EndpointSlice',
    apiVersion: 'discovery.k8s.io/v1',
    metadata: { name: 'web-abc', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
    ...o,
  });

  it.each([
    ['a ClusterIP Service', svc({ selector: { app: 'web' }, ports: [{ port: 80, targetPort: 'http' }] })],
    [
      'a dual-stack NodePort Service with affinity',
      svc({
        type: 'NodePort',
        clusterIPs: ['10.96.0.10', 'fd00::a'],
        externalTrafficPolicy: 'Local',
        sessionAffinity: 'ClientIP',
        sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } },
        ports: [
          { name: 'http', port: 80, nodePort: 30080 },
          { name: 'dns', port: 53, protocol: 'UDP' },
        ],
      }),
    ],
    ['a headless Service with no port', svc({ clusterIP: 'None', selector: { app: 'db' } })],
    ['an ExternalName Service', svc({ type: 'ExternalName', externalName: 'db.example.org' })],
    [
      'an EndpointSlice',
      slice({
        addressType: 'IPv4',
        endpoints: [{ addresses: ['10.0.0.2'], conditions: { ready: true }, nodeName: 'n1' }],
        ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      }),
    ],
  ])('accepts %s', (_n, o) => {
    expect(errs(o)).toEqual([]);
  });

  it.each([
    [
      'a name that is not a DNS-1035 label',
      svc({ ports: [{ port: 80 }] }, '1web'),
      [
        `metadata.name: Invalid value: "1web": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`,
      ],
    ],
    ['no ports', svc({ selector: { app: 'web' } }), ['spec.ports: Required value']],
    [
      'two ports, one unnamed, and a bad protocol',
      svc({
        ports: [
          { name: 'a', port: 80 },
          { port: 81, protocol: 'tcp' },
        ],
      }),
      [
        'spec.ports[1].name: Required value',
        'spec.ports[1].protocol: Unsupported value: "tcp": supported values: "SCTP", "TCP", "UDP"',
      ],
    ],
    [
      'a bad clusterIP and targetPort',
      svc({ clusterIP: '10.96.0.300', ports: [{ port: 80, targetPort: 70000 }] }),
      [
        'spec.clusterIP: Invalid value: "10.96.0.300": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)',
        'spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive',
      ],
    ],
    [
      'a nodePort on a ClusterIP Service, externalTrafficPolicy without NodePort',
      svc({ externalTrafficPolicy: 'Local', ports: [{ port: 80, nodePort: 30080 }] }),
      [
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
        `spec.externalTrafficPolicy: Invalid value: "Local": may only be set when \`type\` is 'NodePort' or 'LoadBalancer'`,
      ],
    ],
    [
      'an affinity timeout over a day',
      svc({
        sessionAffinity: 'ClientIP',
        sessionAffinityConfig: { clientIP: { timeoutSeconds: 86401 } },
        ports: [{ port: 80 }],
      }),
      [
        'spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: must be greater than 0 and less than 86400',
      ],
    ],
    [
      'an EndpointSlice without addressType, with an endpoint without address',
      slice({ endpoints: [{ addresses: [] }] }),
      ['addressType: Required value', 'endpoints[0].addresses: Required value: must contain at least 1 address'],
    ],
    [
      'an IPv4 slice with an IPv6 address and a bad port name',
      slice({ addressType: 'IPv4', endpoints: [{ addresses: ['fd00::1'] }], ports: [{ name: 'Web', port: 80 }] }),
      [
        'endpoints[0].addresses[0]: Invalid value: "fd00::1": must be a valid IPv4 address',
        `ports[0].name: Invalid value: "Web": ${LBL}`,
      ],
    ],
  ])('refuses %s', (_n, o, expected) => {
    expect(errs(o)).toEqual(expected);
  });
});
