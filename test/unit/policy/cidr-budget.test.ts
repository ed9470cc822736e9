/**
 * Policy CIDR prefixes against the node's ipcache capacity: a policy that does not fit is refused
 * as a whole, naming the policy and the map, with nothing of it in the desired state (it isolates
 * and allows nothing); one namespace cannot take the shared map from the others.
 */
import { formatProblem } from '../../../agent/policy/compiled.js';
import { PolicyEngine } from '../../../agent/policy/engine.js';
import type { KubeObject } from '../../../agent/store/types.js';
import type { StoreChange } from '../../../agent/store/store.js';
import { namespaceObj, np, podObj } from './model.js';

const POD_CIDRS = ['10.244.0.0/16', 'fd00:10:244::/56'];

/** n distinct /24s from base (20.0.0.0/24, 20.0.1.0/24, ...). */
function blocks(n: number, first = 20): { ipBlock: { cidr: string } }[] {
  return Array.from({ length: n }, (_, i) => ({
    ipBlock: { cidr: `${first + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24` },
  }));
}

function egressTo(ns: string, name: string, to: unknown[]): KubeObject {
  return np(ns, name, {
    podSelector: {},
    policyTypes: ['Egress'],
    egress: [{ to, ports: [{ protocol: 'TCP', port: 443 }] }],
  });
}

function cluster(): KubeObject[] {
  return [namespaceObj('x'), namespaceObj('y'), podObj('x', 'a'), podObj('y', 'a')];
}

describe('CIDR prefix budget', () => {
  it('refuses a policy over the LPM map as a whole: named error, no prefix in the ipcache, isolated with no entries', () => {
    const e = new PolicyEngine({
      nodeName: 'node-1',
      clusterPodCIDRs: POD_CIDRS,
      cidrBudget: { perNamespace: 1_000_000 },
    });
    const diff = e.upsertAll([...cluster(), egressTo('x', 'huge', blocks(65_600))]);
    const errors = e.errors().map(formatProblem);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(
      /^NetworkPolicy x\/huge: spec: names 65,600 CIDR prefixes; with every other policy that makes 65,600, more than the node's ipcache map weir_ipc_lpm holds for policies \(65,024 of its 65,536 entries/,
    );
    expect(errors[0]).toContain('refused as a whole');
    // Nothing of it written: the ipcache holds only world and the pod network, the pod is
    // isolated for egress and has no entry at all.
    const ipcache = [...e.snapshot().ipcache.keys()].sort();
    expect(ipcache.filter((c) => c.startsWith('20.') || c.startsWith('21.'))).toEqual([]);
    expect(diff.ipcacheUpserted.filter((u) => u.cidr.startsWith('20.'))).toEqual([]);
    const ep = e.snapshot().endpoints.get('x/a')!;
    expect(ep.egressIsolated).toBe(true);
    expect(ep.entries).toEqual([]);
    // The other namespace is untouched.
    expect(e.snapshot().endpoints.get('y/a')!.egressIsolated).toBe(false);
  });

  it('a policy within the budget is admitted whole', () => {
    const e = new PolicyEngine({ nodeName: 'node-1', clusterPodCIDRs: POD_CIDRS });
    e.upsertAll([...cluster(), egressTo('x', 'big', blocks(16_000))]);
    expect(e.errors()).toEqual([]);
    expect(e.snapshot().endpoints.get('x/a')!.entries).toHaveLength(16_000);
    expect([...e.snapshot().ipcache.keys()].filter((c) => c.startsWith('20.'))).toHaveLength(16_000);
  });

  it('one namespace cannot fill the shared map: its budget runs out, the others still fit', () => {
    const e = new PolicyEngine({
      nodeName: 'node-1',
      clusterPodCIDRs: POD_CIDRS,
      cidrBudget: { perNamespace: 1000, total: 1500 },
    });
    e.upsertAll([...cluster(), egressTo('x', 'one', blocks(600)), egressTo('x', 'same-prefixes', blocks(600))]);
    expect(e.errors()).toEqual([]); // shared prefixes count once
    e.upsertAll([egressTo('x', 'two', blocks(500, 30))]);
    expect(e.errors().map(formatProblem)).toEqual([
      expect.stringMatching(
        /^NetworkPolicy x\/two: spec: names 500 CIDR prefixes; with the other policies of namespace x that makes 1,100, over the per-namespace budget of 1,000 entries of the node's ipcache map weir_ipc_lpm/,
      ),
    ]);
    // Namespace y still gets its prefixes, up to what the map holds in all.
    e.upsertAll([egressTo('y', 'mine', blocks(900, 40))]);
    expect(e.errors().map((p) => p.policy)).toEqual(['x/two']);
    expect(e.snapshot().endpoints.get('y/a')!.entries).toHaveLength(900);
    // Past the total: refused, naming the total.
    e.upsertAll([egressTo('y', 'more', blocks(50, 50))]);
    expect(e.errors().map(formatProblem)).toContainEqual(
      expect.stringMatching(
        /^NetworkPolicy y\/more: spec: names 50 CIDR prefixes; with every other policy that makes 1,550/,
      ),
    );
    // Deleting policies gives their prefixes back: the refused ones are admitted without being applied again.
    e.applyAll([{ kind: 'NetworkPolicy', type: 'deleted', key: 'x/one' } as StoreChange]);
    expect(e.errors().map((p) => p.policy)).toEqual(['x/two', 'y/more']); // 600 prefixes are still named by x/same-prefixes
    const diff = e.applyAll([{ kind: 'NetworkPolicy', type: 'deleted', key: 'x/same-prefixes' } as StoreChange]);
    expect(e.errors()).toEqual([]);
    expect(e.snapshot().endpoints.get('x/a')!.entries).toHaveLength(500);
    expect(e.snapshot().endpoints.get('y/a')!.entries).toHaveLength(950);
    expect(diff.ipcacheUpserted.filter((u) => u.cidr.startsWith('30.'))).toHaveLength(500);
  });
});
