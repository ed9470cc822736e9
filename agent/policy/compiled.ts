/**
 * A NetworkPolicy validated and reduced to what the compiler needs: peers as selectors
 * over identities or prefixes, ports as protocol + range or name. Every problem becomes a
 * PolicyProblem naming the policy and the field; a rule with an error allows nothing,
 * while the policy still selects (isolates) its pods.
 */
import type { Direction, L4Protocol } from '../desired.js';
import { parsePrefix, prefixContains, formatPrefix } from '../ipcache/cidr.js';
import type { Prefix } from '../ipcache/cidr.js';
import type { LabelSelector, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort } from '../store/types.js';
import { labelValue, qualifiedName } from '../store/validate.js';
import { SELECTOR_OPERATORS, selectorText } from './selector.js';

export interface PolicyProblem {
  /** "namespace/name" */
  policy: string;
  /** Path inside the object, e.g. "spec.ingress[0].ports[1].endPort". */
  field: string;
  message: string;
}

export function formatProblem(p: PolicyProblem): string {
  return `NetworkPolicy ${p.policy}: ${p.field}: ${p.message}`;
}

/** Pods (identities) chosen by namespace and labels. `namespace` set = only that namespace. */
export interface PodPeer {
  kind: 'pods';
  /** Canonical text; equal peers share one selector-cache entry. */
  key: string;
  namespace?: string;
  namespaceSelector?: LabelSelector;
  podSelector: LabelSelector;
}

/** Prefixes named by an ipBlock: matches CIDR identities only, never pods. */
export interface CidrPeer {
  kind: 'cidr';
  key: string;
  cidr: Prefix;
  except: Prefix[];
}

export type CompiledPeer = PodPeer | CidrPeer;

export type CompiledPort =
  | { kind: 'all'; protocol: L4Protocol }
  | { kind: 'number'; protocol: L4Protocol; port: number; endPort: number }
  | { kind: 'named'; protocol: L4Protocol; name: string };

export interface CompiledRule {
  direction: Direction;
  index: number;
  /** 'any' = empty from/to: every peer. */
  peers: 'any' | CompiledPeer[];
  /** 'any' = empty ports: every port of every protocol. */
  ports: 'any' | CompiledPort[];
  /** False when the rule had an error: it then allows nothing. */
  valid: boolean;
}

export interface CompiledPolicy {
  key: string;
  namespace: string;
  name: string;
  /** Pods of `namespace` it selects; 'all' also when spec.podSelector was invalid (fail closed). */
  podSelector: LabelSelector;
  isolatesIngress: boolean;
  isolatesEgress: boolean;
  /** Rules that take effect (ingress rules only when Ingress is in policyTypes, likewise egress). */
  rules: CompiledRule[];
  errors: PolicyProblem[];
  /** Valid but probably not what the author meant (ipBlock over pod CIDRs is added by the engine). */
  warnings: PolicyProblem[];
  source: NetworkPolicy;
}

const PROTOCOLS: readonly string[] = ['TCP', 'UDP', 'SCTP'];
const IANA_SVC_NAME = /^(?=.*[a-z])[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,14}$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$/;

class Checker {
  readonly problems: PolicyProblem[] = [];
  constructor(readonly policy: string) {}
  add(field: string, message: string): void {
    this.problems.push({ policy: this.policy, field, message });
  }
}

function checkLabelKey(c: Checker, key: string, field: string): void {
  if (key === '') {
    c.add(field, 'label key must not be empty');
    return;
  }
  const slash = key.lastIndexOf('/');
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (!LABEL_NAME.test(name))
    c.add(
      field,
      `"${key}" is not a valid label key (63 characters or less: letters, digits, '-', '_', '.', starting and ending with a letter or digit)`,
    );
  else for (const m of qualifiedName(key)) c.add(field, `Invalid value: ${JSON.stringify(key)}: ${m}`);
}

function checkLabelValue(c: Checker, value: string, field: string): void {
  for (const m of labelValue(value)) c.add(field, `Invalid value: ${JSON.stringify(value)}: ${m}`);
}

function checkSelector(c: Checker, sel: LabelSelector, field: string): void {
  for (const [k, v] of Object.entries(sel.matchLabels)) {
    checkLabelKey(c, k, `${field}.matchLabels`);
    checkLabelValue(c, v, `${field}.matchLabels`);
  }
  sel.matchExpressions.forEach((e, i) => {
    const f = `${field}.matchExpressions[${i}]`;
    checkLabelKey(c, e.key, `${f}.key`);
    if (!(SELECTOR_OPERATORS as readonly string[]).includes(e.operator)) {
      c.add(`${f}.operator`, `unknown operator "${e.operator}" (use In, NotIn, Exists or DoesNotExist)`);
    } else if ((e.operator === 'In' || e.operator === 'NotIn') && e.values.length === 0) {
      c.add(`${f}.values`, `must not be empty for operator ${e.operator}`);
    } else if ((e.operator === 'Exists' || e.operator === 'DoesNotExist') && e.values.length > 0) {
      c.add(`${f}.values`, `must be empty for operator ${e.operator}`);
    }
    e.values.forEach((v, j) => checkLabelValue(c, v, `${f}.values[${j}]`));
  });
}

/** An ipBlock prefix: unlike elsewhere, the prefix length is required (the API server requires it). */
function parseBlockPrefix(s: string): Prefix | string {
  const p = parsePrefix(s);
  if (typeof p !== 'string' && !s.includes('/'))
    return `"${s}" has no prefix length; write ${formatPrefix(p)} for this one address`;
  return p;
}

function compilePeer(c: Checker, p: NetworkPolicyPeer, policyNs: string, field: string): CompiledPeer | undefined {
  const before = c.problems.length;
  if (p.ipBlock) {
    if (p.podSelector || p.namespaceSelector) {
      c.add(
        field,
        'ipBlock cannot be combined with podSelector or namespaceSelector in one peer; write them as two peers',
      );
      return undefined;
    }
    const cidr = parseBlockPrefix(p.ipBlock.cidr);
    if (typeof cidr === 'string') {
      c.add(`${field}.ipBlock.cidr`, p.ipBlock.cidr === '' ? 'is required' : cidr);
      return undefined;
    }
    const except: Prefix[] = [];
    p.ipBlock.except.forEach((e, i) => {
      const f = `${field}.ipBlock.except[${i}]`;
      const x = parseBlockPrefix(e);
      if (typeof x === 'string') c.add(f, x);
      else if (!prefixContains(cidr, x) || x.bits === cidr.bits)
        c.add(f, `"${e}" is not inside cidr ${formatPrefix(cidr)}; every except must be a strict subset of the cidr`);
      else except.push(x);
    });
    if (c.problems.length > before) return undefined;
    const ex = except.map(formatPrefix).sort();
    return {
      kind: 'cidr',
      key: `cidr:${formatPrefix(cidr)}${ex.length ? ` except ${ex.join(',')}` : ''}`,
      cidr,
      except,
    };
  }
  if (!p.podSelector && !p.namespaceSelector) {
    c.add(field, 'a peer needs podSelector, namespaceSelector or ipBlock');
    return undefined;
  }
  if (p.podSelector) checkSelector(c, p.podSelector, `${field}.podSelector`);
  if (p.namespaceSelector) checkSelector(c, p.namespaceSelector, `${field}.namespaceSelector`);
  if (c.problems.length > before) return undefined;
  const podSelector = p.podSelector ?? { matchLabels: {}, matchExpressions: [] };
  if (p.namespaceSelector) {
    return {
      kind: 'pods',
      key: `nssel:${selectorText(p.namespaceSelector)}|pod:${selectorText(podSelector)}`,
      namespaceSelector: p.namespaceSelector,
      podSelector,
    };
  }
  return { kind: 'pods', key: `ns:${policyNs}|pod:${selectorText(podSelector)}`, namespace: policyNs, podSelector };
}

function compilePort(c: Checker, p: NetworkPolicyPort, field: string): CompiledPort | undefined {
  const before = c.problems.length;
  // Exactly as the API server takes it: "tcp" is refused there, so it is an error here too.
  const protocol = p.protocol;
  if (!PROTOCOLS.includes(protocol))
    c.add(
      `${field}.protocol`,
      `Unsupported value: ${JSON.stringify(p.protocol)}: supported values: "SCTP", "TCP", "UDP"`,
    );
  const proto = protocol as L4Protocol;
  if (p.port === undefined) {
    if (p.endPort !== undefined) c.add(`${field}.endPort`, 'endPort needs a numeric port to start the range');
    return c.problems.length > before ? undefined : { kind: 'all', protocol: proto };
  }
  if (typeof p.port === 'string') {
    if (!IANA_SVC_NAME.test(p.port))
      c.add(
        `${field}.port`,
        `"${p.port}" is neither a port number (1-65535) nor a valid port name (1-15 lowercase letters, digits and '-')`,
      );
    if (p.endPort !== undefined)
      c.add(`${field}.endPort`, `endPort cannot be used with the named port "${p.port}"; use a numeric port`);
    return c.problems.length > before ? undefined : { kind: 'named', protocol: proto, name: p.port };
  }
  if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535)
    c.add(`${field}.port`, `port ${p.port} is out of range (1-65535)`);
  let endPort = p.port;
  if (p.endPort !== undefined) {
    if (!Number.isInteger(p.endPort) || p.endPort < 1 || p.endPort > 65535)
      c.add(`${field}.endPort`, `endPort ${p.endPort} is out of range (1-65535)`);
    else if (p.endPort < p.port)
      c.add(
        `${field}.endPort`,
        `endPort ${p.endPort} is below port ${p.port}; it must be greater than or equal to port`,
      );
    endPort = p.endPort;
  }
  return c.problems.length > before ? undefined : { kind: 'number', protocol: proto, port: p.port, endPort };
}

/** Validates and compiles one policy. Never throws. */
export function compilePolicy(np: NetworkPolicy): CompiledPolicy {
  const key = `${np.namespace}/${np.name}`;
  const c = new Checker(key);
  let podSelector = np.podSelector;
  checkSelector(c, np.podSelector, 'spec.podSelector');
  const selectorInvalid = c.problems.length > 0;
  if (selectorInvalid) {
    c.add(
      'spec.podSelector',
      'is invalid, so this policy isolates every pod of its namespace and allows nothing until it is fixed',
    );
    podSelector = { matchLabels: {}, matchExpressions: [] };
  }
  const isolatesIngress = np.policyTypes.includes('Ingress');
  const isolatesEgress = np.policyTypes.includes('Egress');
  const rules: CompiledRule[] = [];
  const warnings: PolicyProblem[] = [];
  const sides: {
    direction: Direction;
    on: boolean;
    list: { peers: NetworkPolicyPeer[]; ports: NetworkPolicyPort[] }[];
    spec: string;
    peerField: string;
  }[] = [
    {
      direction: 'ingress',
      on: isolatesIngress,
      list: np.ingress.map((r) => ({ peers: r.from, ports: r.ports })),
      spec: 'spec.ingress',
      peerField: 'from',
    },
    {
      direction: 'egress',
      on: isolatesEgress,
      list: np.egress.map((r) => ({ peers: r.to, ports: r.ports })),
      spec: 'spec.egress',
      peerField: 'to',
    },
  ];
  for (const side of sides) {
    side.list.forEach((r, index) => {
      const before = c.problems.length;
      const peers = r.peers.map((p, i) =>
        compilePeer(c, p, np.namespace, `${side.spec}[${index}].${side.peerField}[${i}]`),
      );
      const ports = r.ports.map((p, i) => compilePort(c, p, `${side.spec}[${index}].ports[${i}]`));
      const valid = c.problems.length === before && !selectorInvalid;
      if (!side.on) {
        if (index === 0)
          warnings.push({
            policy: key,
            field: side.spec,
            message: `is ignored: policyTypes ${JSON.stringify(np.policyTypes)} does not include ${side.direction === 'ingress' ? 'Ingress' : 'Egress'}`,
          });
        return;
      }
      rules.push({
        direction: side.direction,
        index,
        peers: !valid ? [] : r.peers.length === 0 ? 'any' : (peers as CompiledPeer[]),
        ports: !valid ? [] : r.ports.length === 0 ? 'any' : (ports as CompiledPort[]),
        valid,
      });
    });
  }
  return {
    key,
    namespace: np.namespace,
    name: np.name,
    podSelector,
    isolatesIngress,
    isolatesEgress,
    rules,
    errors: c.problems,
    warnings,
    source: np,
  };
}
