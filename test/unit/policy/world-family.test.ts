/**
 * 0.0.0.0/0 and ::/0 select the world identity of their own family only (world-ipv4 = 9,
 * world-ipv6 = 10): an ipBlock of one family never opens the other. Checked against `explain`
 * and against the datapath lookup simulated over the compiled entries and the ipcache.
 */
import { ReservedIdentity } from '../../../agent/desired.js';
import type { Direction } from '../../../agent/desired.js';
import { explain } from '../../../agent/policy/explain.js';
import { entryAllows } from '../../../agent/policy/simulate.js';
import type { KubeObject } from '../../../agent/store/types.js';
import { cluster, engineWith, np } from './model.js';

const OUTSIDE4 = '203.0.113.7';
const OUTSIDE6 = '2001:db8::7';

function verdicts(
  pol: KubeObject,
  direction: Direction,
  ip: string,
): { explain: boolean; datapath: boolean; identity: number; why: string } {
  const engine = engineWith([...cluster(), pol]);
  const ep = engine.snapshot().endpoints.get('x/a')!;
  const identity = engine.resolveIP(ip)!;
  const [from, to] = direction === 'egress' ? ['x/a', ip] : [ip, 'x/a'];
  const ex = explain(engine, { from, to, port: 80, protocol: 'TCP' });
  const dir = direction === 'egress' ? ex.egress : ex.ingress;
  return {
    explain: ex.allowed,
    datapath: entryAllows(ep, direction, identity, 'TCP', 80),
    identity,
    why: JSON.stringify(dir),
  };
}

const block = (direction: Direction, cidr: string): KubeObject =>
  direction === 'egress'
    ? np('x', 'world', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr } }] }],
      })
    : np('x', 'world', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Ingress'],
        ingress: [{ from: [{ ipBlock: { cidr } }] }],
      });

describe('the world identity is per address family', () => {
  it('outside addresses resolve to world-ipv4 and world-ipv6', () => {
    const engine = engineWith(cluster());
    expect(engine.resolveIP(OUTSIDE4)).toBe(ReservedIdentity.worldIPv4);
    expect(engine.resolveIP(OUTSIDE6)).toBe(ReservedIdentity.worldIPv6);
  });

  for (const direction of ['egress', 'ingress'] as const) {
    it(`${direction} ipBlock 0.0.0.0/0 allows an outside IPv4 address and denies an outside IPv6 one`, () => {
      const v4 = verdicts(block(direction, '0.0.0.0/0'), direction, OUTSIDE4);
      expect(v4).toMatchObject({ explain: true, datapath: true, identity: ReservedIdentity.worldIPv4 });
      const v6 = verdicts(block(direction, '0.0.0.0/0'), direction, OUTSIDE6);
      expect(v6).toMatchObject({ explain: false, datapath: false, identity: ReservedIdentity.worldIPv6 });
      expect(v6.why).toContain(`${OUTSIDE6} is not inside ipBlock 0.0.0.0/0`);
    });

    it(`${direction} ipBlock ::/0 allows an outside IPv6 address and denies an outside IPv4 one`, () => {
      const v6 = verdicts(block(direction, '::/0'), direction, OUTSIDE6);
      expect(v6).toMatchObject({ explain: true, datapath: true, identity: ReservedIdentity.worldIPv6 });
      const v4 = verdicts(block(direction, '::/0'), direction, OUTSIDE4);
      expect(v4).toMatchObject({ explain: false, datapath: false, identity: ReservedIdentity.worldIPv4 });
      expect(v4.why).toContain(`${OUTSIDE4} is not inside ipBlock ::/0`);
    });
  }

  it("a /0 keeps allowing the CIDR identities inside it, and only its own family's", () => {
    const pol = np('x', 'world', {
      podSelector: { matchLabels: { pod: 'a' } },
      policyTypes: ['Egress'],
      egress: [
        { to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['198.51.100.0/24'] } }] },
        { to: [{ ipBlock: { cidr: '2001:db8:1::/48' } }] },
      ],
    });
    expect(verdicts(pol, 'egress', '198.51.100.9')).toMatchObject({ explain: false, datapath: false });
    expect(verdicts(pol, 'egress', OUTSIDE4)).toMatchObject({ explain: true, datapath: true });
    expect(verdicts(pol, 'egress', '2001:db8:1::9')).toMatchObject({ explain: true, datapath: true });
    expect(verdicts(pol, 'egress', OUTSIDE6)).toMatchObject({
      explain: false,
      datapath: false,
      identity: ReservedIdentity.worldIPv6,
    });
  });
});
