/** Prefix math and the ipcache: ipBlock never resolves for pod addresses. */
import { ReservedIdentity } from '../../../agent/desired.js';
import { canonicalIP, canonicalPrefix, parsePrefix, prefixContains } from '../../../agent/ipcache/cidr.js';
import type { Prefix } from '../../../agent/ipcache/cidr.js';
import { Ipcache, POD_CIDR_IDENTITY } from '../../../agent/ipcache/ipcache.js';
import { PolicyEngine } from '../../../agent/policy/engine.js';
import { toKubeObject } from '../../../agent/store/convert.js';
import { np } from '../policy/model.js';

describe('cidr', () => {
  it('canonicalises addresses and prefixes', () => {
    expect(canonicalIP('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(canonicalIP('::ffff:10.1.2.3')).toBe('::ffff:a01:203');
    expect(canonicalIP('fd00:0:0:1:0:0:0:0')).toBe('fd00:0:0:1::');
    expect(canonicalIP('10.01.0.1')).toBeUndefined();
    expect(canonicalPrefix('10.1.2.3/8')).toBe('10.0.0.0/8');
    expect(canonicalPrefix('fd00::1:2/64')).toBe('fd00::/64');
    expect(canonicalPrefix('10.0.0.1')).toBe('10.0.0.1/32');
    expect(canonicalPrefix('0.0.0.0/0')).toBe('0.0.0.0/0');
    expect(canonicalPrefix('::/0')).toBe('::/0');
  });
  it('reads and writes IPv4 addresses as an octet-by-octet reference does', () => {
    let seed = 15;
    const next = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    const edge = [0, 1, 9, 10, 99, 100, 199, 200, 249, 250, 255];
    for (let i = 0; i < 5000; i++) {
      const octets = Array.from({ length: 4 }, () => (next() % 3 === 0 ? edge[next() % edge.length]! : next() % 256));
      const text = octets.join('.');
      const ref = octets.reduce((a, o) => a * 256n + BigInt(o), 0n);
      const p = parsePrefix(`${text}/32`) as Prefix;
      expect(p.addr).toBe(ref);
      expect(canonicalIP(text)).toBe(text);
      expect(canonicalIP(` ${text}\n`)).toBe(text);
      expect(canonicalPrefix(`${text}/24`)).toBe(`${octets.slice(0, 3).join('.')}.0/24`);
    }
    for (const bad of ['256.1.1.1', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.-4', '1.2.3.4a', ''])
      expect(canonicalIP(bad)).toBeUndefined();
  });

  it('tests containment within one family only', () => {
    const p = (s: string): Prefix => parsePrefix(s) as Prefix;
    expect(prefixContains(p('10.0.0.0/8'), p('10.1.0.0/16'))).toBe(true);
    expect(prefixContains(p('10.1.0.0/16'), p('10.0.0.0/8'))).toBe(false);
    expect(prefixContains(p('0.0.0.0/0'), p('::/0'))).toBe(false);
    expect(prefixContains(p('fd00::/8'), p('fd00:1::/32'))).toBe(true);
  });
});

describe('ipcache through the engine', () => {
  const pod = (ns: string, name: string, ip: string, node = 'n1') =>
    toKubeObject({
      kind: 'Pod',
      metadata: { name, namespace: ns, labels: { app: name } },
      spec: { nodeName: node },
      status: { podIPs: [{ ip }] },
    })!;
  const node = (name: string, ip: string, cidr: string) =>
    toKubeObject({
      kind: 'Node',
      metadata: { name },
      spec: { podCIDRs: [cidr] },
      status: {
        addresses: [
          { type: 'InternalIP', address: ip },
          { type: 'Hostname', address: name },
        ],
      },
    })!;

  function engine(): PolicyEngine {
    const e = new PolicyEngine({ nodeName: 'n1', clusterPodCIDRs: ['fd00:10::/64'] });
    e.upsertAll([
      node('n1', '192.168.1.1', '10.244.1.0/24'),
      node('n2', '192.168.1.2', '10.244.2.0/24'),
      pod('x', 'a', '10.244.1.5'),
      pod('x', 'b', '10.244.2.7', 'n2'),
      np('x', 'cidrs', {
        podSelector: {},
        policyTypes: ['Egress'],
        egress: [
          { to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '192.168.0.0/16'] } }] },
          {
            to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }, { ipBlock: { cidr: '10.244.1.0/28' } }],
          },
        ],
      }),
    ]);
    return e;
  }

  it('finds a pod address exactly and a prefix by containment, whichever layers claimed it first', () => {
    const c = new Ipcache();
    c.claim('10.0.0.5/32', 'pod', 'x/a', 300);
    c.claim('fd00::5/128', 'pod', 'x/a', 300);
    c.flush();
    expect(c.lookup('10.0.0.5')).toBe(300);
    expect(c.lookup('fd00::5')).toBe(300);
    expect(c.lookup('10.0.0.6')).toBe(ReservedIdentity.worldIPv4);
    // a policy names the pod's own address and its /24: the pod still wins its address
    c.claim('10.0.0.5/32', 'cidr', 'policy', 0x1000001);
    c.claim('10.0.0.0/24', 'cidr', 'policy', 0x1000002);
    c.flush();
    expect(c.lookup('10.0.0.5')).toBe(300);
    expect(c.lookup('10.0.0.6')).toBe(0x1000002);
    // the pod goes: its address falls to the policy's /32, found by containment now
    c.unclaim('10.0.0.5/32', 'pod', 'x/a');
    c.flush();
    expect(c.lookup('10.0.0.5')).toBe(0x1000001);
    expect(c.lookup('10.0.0.5/32')).toBe(0x1000001);
    c.unclaim('10.0.0.5/32', 'cidr', 'policy');
    c.flush();
    expect(c.lookup('10.0.0.5')).toBe(0x1000002);
    expect(() => c.claim('10.0.1.0/24', 'pod', 'x/b', 301)).toThrow(/host prefixes/);
    expect(c.lookup('10.0.1.1')).toBe(ReservedIdentity.worldIPv4);
  });

  it('resolves pods, nodes, the pod network, policy prefixes and the world by longest prefix', () => {
    const e = engine();
    const idOf = (k: string): number => e.getPod(k)!.identity!.id;
    expect(e.resolveIP('10.244.1.5')).toBe(idOf('x/a'));
    expect(e.resolveIP('10.244.2.7')).toBe(idOf('x/b'));
    expect(e.resolveIP('192.168.1.1')).toBe(ReservedIdentity.host);
    expect(e.resolveIP('192.168.1.2')).toBe(ReservedIdentity.remoteNode);
    // An unknown address of the pod network: not a CIDR identity, even inside 10.244.1.0/28 that a policy names.
    expect(e.resolveIP('10.244.1.9')).toBe(POD_CIDR_IDENTITY);
    expect(e.resolveIP('10.244.2.99')).toBe(POD_CIDR_IDENTITY);
    expect(e.resolveIP('fd00:10::99')).toBe(POD_CIDR_IDENTITY);
    const ten = e.resolveIP('10.9.9.9')!;
    const tenOne = e.resolveIP('10.1.2.3')!;
    expect(ten & (1 << 24)).toBeTruthy();
    expect(tenOne & (1 << 24)).toBeTruthy();
    expect(ten).not.toBe(tenOne);
    expect(e.resolveIP('192.168.7.7')).not.toBe(ReservedIdentity.worldIPv4);
    expect(e.resolveIP('8.8.8.8')).toBe(ReservedIdentity.worldIPv4);
    expect(e.resolveIP('2001:db8::1')).toBe(ReservedIdentity.worldIPv6);
    expect(e.snapshot().ipcache.get('0.0.0.0/0')?.identity).toBe(ReservedIdentity.worldIPv4);
    expect(e.snapshot().ipcache.get('::/0')?.identity).toBe(ReservedIdentity.worldIPv6);
    expect(e.snapshot().ipcache.has('10.244.1.0/28')).toBe(false);
  });

  it('compiles except-lists into the allowed CIDR identities, carved by longest prefix', () => {
    const e = engine();
    const ep = e.snapshot().endpoints.get('x/a')!;
    const allowed = new Set(ep.entries.map((x) => x.remoteIdentity));
    expect(allowed.has(ReservedIdentity.worldIPv4)).toBe(true); // 0.0.0.0/0
    expect(allowed.has(ReservedIdentity.worldIPv6)).toBe(false); // no IPv6 rule
    expect(allowed.has(ReservedIdentity.world)).toBe(false); // an unknown address is no family's /0
    expect(allowed.has(e.resolveIP('10.9.9.9')!)).toBe(true); // 10.0.0.0/8
    expect(allowed.has(e.resolveIP('10.1.2.3')!)).toBe(false); // except 10.1.0.0/16
    expect(allowed.has(e.resolveIP('192.168.7.7')!)).toBe(false); // except 192.168.0.0/16
    expect(allowed.has(e.resolveIP('10.244.2.7')!)).toBe(false); // a pod: never by ipBlock
    expect(allowed.has(POD_CIDR_IDENTITY)).toBe(false);
    expect(allowed.has(ReservedIdentity.remoteNode)).toBe(false);
  });

  it('drops a pod address from the ipcache when the pod finishes', () => {
    const e = engine();
    const d = e.upsertAll([
      toKubeObject({
        kind: 'Pod',
        metadata: { name: 'a', namespace: 'x', labels: { app: 'a' } },
        spec: { nodeName: 'n1' },
        status: { phase: 'Succeeded', podIPs: [{ ip: '10.244.1.5' }] },
      })!,
    ]);
    expect(d.ipcacheRemoved).toEqual(['10.244.1.5/32']);
    expect(d.endpointsRemoved).toEqual(['x/a']);
    expect(e.resolveIP('10.244.1.5')).toBe(POD_CIDR_IDENTITY);
  });
});
