/**
 * Which interfaces serve NodePorts (agent/node/nodeport.ts), without root: the choice from
 * `ip -j addr show`-shaped links, and the attach/detach bookkeeping against a recording datapath.
 * test/k8s/nodeport.test.ts shows the same with real interfaces and real traffic.
 */
import {
  chooseNodePortInterfaces,
  nodeAddresses,
  NodePortInterfaces,
  type LinkAddresses,
} from '../../../agent/node/nodeport.js';
import type { Node } from '../../../agent/store/index.js';

const link = (ifindex: number, ifname: string, addrs: string[], flags: string[] = ['UP']): LinkAddresses => ({
  ifindex,
  ifname,
  flags,
  addr_info: addrs.map((local) => ({ local })),
});

const LINKS = [
  link(1, 'lo', ['127.0.0.1', '::1', '10.0.0.99'], ['LOOPBACK', 'UP']),
  link(2, 'ens5', ['10.0.0.5', 'fe80::1']),
  link(3, 'ens6', ['203.0.113.7', '2001:db8::0:7']),
  link(4, 'cali1234', []),
];

describe('NodePort interfaces', () => {
  it("takes a Node's InternalIP and ExternalIP addresses, not its host name", () => {
    const node: Node = {
      kind: 'Node',
      name: 'n',
      podCIDRs: [],
      addresses: [
        { type: 'InternalIP', address: '10.0.0.5' },
        { type: 'ExternalIP', address: '2001:db8:0:0::7' },
        { type: 'Hostname', address: 'n.example' },
        { type: 'InternalDNS', address: 'n.internal' },
      ],
    };
    expect(nodeAddresses(node)).toEqual(['10.0.0.5', '2001:db8::7']);
    expect(nodeAddresses(undefined)).toEqual([]);
  });

  it('chooses the interfaces that hold a node address (IPv6 compared canonically), never loopback, and names the addresses on none', () => {
    expect(chooseNodePortInterfaces(LINKS, [], ['10.0.0.5', '2001:db8::7', '10.0.0.99', '192.0.2.1'])).toEqual({
      by: 'node',
      interfaces: [
        { name: 'ens5', ifindex: 2, addresses: ['10.0.0.5'] },
        { name: 'ens6', ifindex: 3, addresses: ['2001:db8::7'] },
      ],
      missing: ['10.0.0.99', '192.0.2.1'],
    });
    expect(chooseNodePortInterfaces(LINKS, [], [])).toEqual({ by: 'node', interfaces: [], missing: [] });
  });

  it('takes the configured names instead, whatever addresses they hold, and names those the node lacks', () => {
    expect(chooseNodePortInterfaces(LINKS, ['ens6', 'bond0'], ['10.0.0.5'])).toEqual({
      by: 'flag',
      interfaces: [{ name: 'ens6', ifindex: 3, addresses: [] }],
      missing: ['bond0'],
    });
  });

  it('attaches once per interface, follows a new ifindex, detaches what is no longer chosen and what an earlier agent left', async () => {
    let links = LINKS;
    const calls: string[] = [];
    // ifindex 4 carries from_node from an earlier agent (a veth is never chosen by address).
    const serving = new Set([4]);
    const np = new NodePortInterfaces(
      [],
      {
        attach: (i) => {
          calls.push(`attach ${i}`);
          serving.add(i);
        },
        detach: (i) => {
          calls.push(`detach ${i}`);
          serving.delete(i);
        },
        programOn: (i) => (serving.has(i) ? 'from_node' : undefined),
      },
      { info: () => undefined, warn: (l) => calls.push(`warn ${l}`) },
      () => Promise.resolve(links),
    );
    await np.refresh(['10.0.0.5']);
    expect(calls.splice(0)).toEqual(['attach 2', 'detach 4']);
    await np.refresh(['10.0.0.5']);
    expect(calls.splice(0)).toEqual([]);
    // The address moves to ens6; ens5 is recreated later with a new ifindex and the address back.
    await np.refresh(['203.0.113.7']);
    expect(calls.splice(0)).toEqual(['attach 3', 'detach 2']);
    links = [...LINKS.filter((l) => l.ifindex !== 2), link(9, 'ens5', ['10.0.0.5'])];
    await np.refresh(['10.0.0.5', '203.0.113.7']);
    expect(calls.splice(0)).toEqual(['attach 9']);
    expect(np.status()).toEqual({
      by: 'node',
      interfaces: [
        { name: 'ens5', ifindex: 9, addresses: ['10.0.0.5'] },
        { name: 'ens6', ifindex: 3, addresses: ['203.0.113.7'] },
      ],
      missing: [],
      failed: [],
    });
    expect([...serving].sort()).toEqual([3, 9]);
  });

  it("never takes a pod's interface (from_pod on it): the pod stays policed, the refusal is reported", async () => {
    const calls: string[] = [];
    const np = new NodePortInterfaces(
      ['cali1234', 'ens5'],
      {
        attach: (i) => calls.push(`attach ${i}`),
        detach: (i) => calls.push(`detach ${i}`),
        programOn: (i) => (i === 4 ? 'from_pod' : undefined),
      },
      { info: () => undefined, warn: () => undefined },
      () => Promise.resolve(LINKS),
    );
    await np.refresh([]);
    expect(calls).toEqual(['attach 2']);
    expect(np.status()).toMatchObject({
      interfaces: [{ name: 'ens5' }],
      failed: [
        { name: 'cali1234', error: "it carries a pod's programs (from_pod): a pod's interface never serves NodePorts" },
      ],
    });
  });

  it('reports an attachment that failed, warns once, and retries it at the next refresh', async () => {
    let fail = true;
    const warnings: string[] = [];
    const np = new NodePortInterfaces(
      ['ens5'],
      {
        attach: () => {
          if (fail) throw new Error('attaching to ingress of ifindex 2: Operation not permitted');
        },
        detach: () => undefined,
        programOn: () => undefined,
      },
      { info: () => undefined, warn: (l) => warnings.push(l) },
      () => Promise.resolve(LINKS),
    );
    await np.refresh([]);
    await np.refresh([]);
    expect(np.status()).toMatchObject({
      interfaces: [],
      failed: [{ name: 'ens5', error: 'attaching to ingress of ifindex 2: Operation not permitted' }],
    });
    expect(warnings).toEqual([
      'cannot serve NodePorts on ens5: attaching to ingress of ifindex 2: Operation not permitted; retried every refresh',
    ]);
    fail = false;
    await np.refresh([]);
    expect(np.status()).toMatchObject({ interfaces: [{ name: 'ens5', ifindex: 2 }], failed: [] });
  });
});
