import { Enricher } from '../../agent/flows/enrich.js';
import { MonotonicClock } from '../../agent/flows/clock.js';
import { buildFlow } from '../../agent/flows/flow.js';
import { compileFilters, FilterError } from '../../agent/flows/filter.js';
import { buildBlacklist, buildWhitelist, FlagError, type FilterFlagValues } from '../../agent/flows/cli-filters.js';
import type { Flow, FlowFilter } from '../../agent/flows/types.js';
import { allowed, denied, ev, makeContext, WORLD_CIDR_ID } from './fixtures.js';

const o = { clock: new MonotonicClock(), enricher: new Enricher(makeContext()), nodeName: 'n' };
// A small, varied set of flows; each test asserts exactly which ones a filter keeps.
const FLOWS: Record<string, Flow> = {
  denied: buildFlow(denied(), o), // shop/frontend -> shop/backend:8080 TCP, ingress, DROPPED
  allowed: buildFlow(allowed(), o), // ops/prober -> shop/backend:8080 TCP, ingress, FORWARDED
  dns: buildFlow(
    ev({ direction: 1, protocol: 17, dstPort: 53, dstAddr: '10.230.0.12', dstIdentity: 258, match: 4 }),
    o,
  ), // frontend -> prober:53 UDP egress
  world: buildFlow(ev({ srcAddr: '203.0.113.9', srcIdentity: WORLD_CIDR_ID, verdict: 1, dropReason: 1, match: 0 }), o), // world -> backend dropped
  icmp6: buildFlow(
    ev({ family: 6, srcAddr: 'fd00:230::10', dstAddr: 'fd00:230::11', protocol: 58, srcPort: 128, dstPort: 0 }),
    o,
  ),
  revoked: buildFlow(ev({ verdict: 1, dropReason: 2, match: 0, flags: 0, tcpFlags: 0x10 }), o),
  malformed: buildFlow(ev({ verdict: 1, dropReason: 4, match: 0 }), o),
};

function keep(whitelist: FlowFilter[], blacklist: FlowFilter[] = []): string[] {
  const p = compileFilters(whitelist, blacklist);
  return Object.entries(FLOWS)
    .filter(([, f]) => p(f))
    .map(([k]) => k);
}

function flags(v: FilterFlagValues, negated: Array<{ flag: keyof FilterFlagValues; value: string }> = []): string[] {
  return keep(buildWhitelist(v), buildBlacklist(negated));
}

const ALL = Object.keys(FLOWS);

describe('flow filters (API)', () => {
  it('keeps every flow without filters', () => {
    expect(keep([])).toEqual(ALL);
  });

  it('narrows by pod, namespace prefix and pod name prefix', () => {
    expect(keep([{ source_pod: ['ops/prober'] }])).toEqual(['allowed']);
    expect(keep([{ destination_pod: ['ops/'] }])).toEqual(['dns']);
    expect(keep([{ source_pod: ['frontend'] }])).toEqual(['denied', 'dns', 'icmp6', 'revoked', 'malformed']);
    expect(keep([{ source_pod: ['front'] }, { destination_pod: ['ops/'] }])).toEqual([
      'denied',
      'dns',
      'icmp6',
      'revoked',
      'malformed',
    ]);
  });

  it('narrows by verdict, drop reason, event type, direction and reply', () => {
    expect(keep([{ verdict: [1] }])).toEqual(['allowed', 'dns', 'icmp6']);
    expect(keep([{ drop_reason_desc: [133] }])).toEqual(['denied', 'world']);
    expect(keep([{ event_type: [{ type: 1 }] }])).toEqual(['denied', 'world', 'revoked', 'malformed']);
    // policy verdicts include policy drops, not malformed packets
    expect(keep([{ event_type: [{ type: 5 }] }])).toEqual(['denied', 'allowed', 'dns', 'world', 'icmp6', 'revoked']);
    expect(keep([{ traffic_direction: [2] }])).toEqual(['dns']);
    expect(keep([{ reply: [true] }])).toEqual([]);
  });

  it('narrows by protocol, port, IP/CIDR, identity and IP version', () => {
    expect(keep([{ protocol: ['udp'] }])).toEqual(['dns']);
    expect(keep([{ protocol: ['icmp'] }])).toEqual(['icmp6']);
    expect(keep([{ destination_port: ['53'] }])).toEqual(['dns']);
    expect(keep([{ source_ip: ['203.0.113.0/24'] }])).toEqual(['world']);
    expect(keep([{ destination_ip: ['fd00:230::/48'] }])).toEqual(['icmp6']);
    expect(keep([{ source_identity: [258] }])).toEqual(['allowed']);
    expect(keep([{ ip_version: [2] }])).toEqual(['icmp6']);
  });

  it('matches label selectors against endpoint labels', () => {
    expect(keep([{ source_label: ['app=prober'] }])).toEqual(['allowed']);
    expect(keep([{ source_label: ['reserved:world'] }])).toEqual(['world']);
    expect(keep([{ destination_label: ['app in (prober,nothing)'] }])).toEqual(['dns']);
    expect(keep([{ source_label: ['tier!=web,app'] }])).toEqual(['allowed']);
    expect(keep([{ source_label: ['!app'] }])).toEqual(['world']);
  });

  it('ANDs fields of one filter, ORs filters, and subtracts the blacklist', () => {
    expect(keep([{ verdict: [2], source_pod: ['shop/'] }])).toEqual(['denied', 'revoked', 'malformed']);
    expect(keep([{ verdict: [2] }], [{ drop_reason_desc: [133] }])).toEqual(['revoked', 'malformed']);
    expect(keep([], [{ source_pod: ['shop/'] }])).toEqual(['allowed', 'world']);
  });

  it('rejects invalid values naming the field', () => {
    expect(() => compileFilters([{ source_ip: ['10.0.0.300'] }])).toThrow(FilterError);
    expect(() => compileFilters([{ source_ip: ['nope'] }])).toThrow(/source_ip: "nope" is not an IP address or CIDR/);
    expect(() => compileFilters([{ protocol: ['http'] }])).toThrow(/protocol: unknown "http"/);
    expect(() => compileFilters([{ destination_port: ['99999'] }])).toThrow(/destination_port/);
    expect(() => compileFilters([{ source_label: ['app in (a'] }])).toThrow(/source_label: invalid label selector/);
  });
});

describe('weir observe flags -> filters', () => {
  it('--namespace and --pod select either side', () => {
    expect(flags({ namespace: ['ops'] })).toEqual(['allowed', 'dns']);
    expect(flags({ pod: ['ops/prober'] })).toEqual(['allowed', 'dns']);
    // a pod without a namespace is in "default", as in Hubble
    expect(flags({ pod: ['prober'] })).toEqual([]);
    expect(buildWhitelist({ pod: ['prober'] })).toEqual([
      { source_pod: ['default/prober'] },
      { destination_pod: ['default/prober'] },
    ]);
    expect(flags({ namespace: ['shop'], pod: ['backend'] })).toEqual([
      'denied',
      'allowed',
      'world',
      'revoked',
      'malformed',
    ]);
  });

  it('--from-* and --to-* select one side', () => {
    expect(flags({ fromPod: ['ops/prober'] })).toEqual(['allowed']);
    expect(flags({ toPod: ['ops/prober'] })).toEqual(['dns']);
    expect(flags({ fromNamespace: ['ops'] })).toEqual(['allowed']);
    expect(flags({ toNamespace: ['ops'] })).toEqual(['dns']);
    expect(flags({ fromNamespace: ['shop'], fromPod: ['front'] })).toEqual([
      'denied',
      'dns',
      'icmp6',
      'revoked',
      'malformed',
    ]);
    expect(flags({ fromLabel: ['app=prober'] })).toEqual(['allowed']);
  });

  it('different flags AND, repeated flags OR', () => {
    expect(flags({ verdict: ['DROPPED'], pod: ['shop/frontend'] })).toEqual(['denied', 'revoked', 'malformed']);
    expect(flags({ verdict: ['dropped'], protocol: ['tcp'], port: ['8080'], toPod: ['shop/backend'] })).toEqual([
      'denied',
      'world',
      'revoked',
      'malformed',
    ]);
    expect(flags({ protocol: ['udp', 'icmp'] })).toEqual(['dns', 'icmp6']);
    expect(flags({ label: ['app=prober'], fromLabel: ['app=prober'] })).toEqual(['allowed']);
    expect(flags({ type: ['drop'], dropReason: ['policy-revoked'] })).toEqual(['revoked']);
    expect(flags({ trafficDirection: ['egress'] })).toEqual(['dns']);
    expect(flags({ identity: ['258'] })).toEqual(['allowed', 'dns']);
    expect(flags({ ip: ['203.0.113.9'] })).toEqual(['world']);
  });

  it('--not excludes what the next flag selects', () => {
    expect(flags({ verdict: ['DROPPED'] }, [{ flag: 'dropReason', value: 'POLICY_DENIED' }])).toEqual([
      'revoked',
      'malformed',
    ]);
    expect(flags({}, [{ flag: 'namespace', value: 'ops' }])).toEqual([
      'denied',
      'world',
      'icmp6',
      'revoked',
      'malformed',
    ]);
    expect(flags({}, [{ flag: 'namespace', value: 'shop' }])).toEqual([]);
  });

  it('tells the user what is wrong with a flag', () => {
    expect(() => buildWhitelist({ verdict: ['ALLOWED'] })).toThrow(
      /--verdict: unknown verdict "ALLOWED", use FORWARDED or DROPPED/,
    );
    expect(() => buildWhitelist({ type: ['trace'] })).toThrow(/--type: unknown event type "trace"/);
    expect(() => buildWhitelist({ dropReason: ['bad'] })).toThrow(
      /--drop-reason: unknown reason "bad", use one of POLICY_DENIED/,
    );
    expect(() => buildWhitelist({ port: ['http'] })).toThrow(FlagError);
    expect(() => buildWhitelist({ verdict: ['DROPPED'], fromIdentity: ['1'], toIdentity: ['x'] })).toThrow(
      /--to-identity/,
    );
  });
});

/*
 * Flags combined as Hubble combines them, each against a set computed by hand from FLOWS:
 *   denied    shop/frontend 10.230.0.10:43210 -> shop/backend 10.230.0.11:8080 TCP SYN  ingress DROPPED  POLICY_DENIED
 *   allowed   ops/prober    10.230.0.12:43210 -> shop/backend 10.230.0.11:8080 TCP SYN  ingress FORWARDED
 *   dns       shop/frontend 10.230.0.10:43210 -> ops/prober   10.230.0.12:53   UDP      egress  FORWARDED
 *   world     203.0.113.9:43210 (world)       -> shop/backend 10.230.0.11:8080 TCP SYN  ingress DROPPED  POLICY_DENIED
 *   icmp6     shop/frontend fd00:230::10      -> fd00:230::11 ICMPv6                    ingress FORWARDED
 *   revoked   shop/frontend 10.230.0.10:43210 -> shop/backend 10.230.0.11:8080 TCP ACK  ingress DROPPED  POLICY_REVOKED
 *   malformed shop/frontend 10.230.0.10:43210 -> shop/backend 10.230.0.11:8080 TCP SYN  ingress DROPPED  INVALID_PACKET
 */
describe('weir observe flags combine like hubble observe', () => {
  it('--from-ip CIDR with --ip ADDRESS: CIDR containment, not string equality', () => {
    // from 10.230/16 AND (from .10 OR to .10)
    expect(flags({ fromIp: ['10.230.0.0/16'], ip: ['10.230.0.10'] })).toEqual([
      'denied',
      'dns',
      'revoked',
      'malformed',
    ]);
    // from 10.230/16 AND (from or to 10.230.0.12/31 = .12, .13)
    expect(flags({ fromIp: ['10.230.0.0/16'], ip: ['10.230.0.12/31'] })).toEqual(['allowed', 'dns']);
    // from .10 AND to in 10.230.0.0/24
    expect(flags({ fromIp: ['10.230.0.10'], toIp: ['10.230.0.0/24'] })).toEqual([
      'denied',
      'dns',
      'revoked',
      'malformed',
    ]);
    // the narrower of two nested CIDRs on one side
    expect(flags({ fromIp: ['10.0.0.0/8'], ip: ['10.230.0.12/32', '203.0.113.0/24'] })).toEqual(['allowed', 'dns']);
    // disjoint on one side: only the other side can match
    expect(flags({ fromIp: ['203.0.113.0/24'], ip: ['10.230.0.11'] })).toEqual(['world']);
    // IPv6 prefix against an IPv6 address
    expect(flags({ ip: ['fd00:230::/64'], fromIp: ['fd00:230::10'] })).toEqual(['icmp6']);
  });

  it('--from-pod with --pod: name prefixes, the longer wins', () => {
    // source shop/front* AND (source or destination shop/frontend*)
    expect(flags({ fromPod: ['shop/front'], pod: ['shop/frontend'] })).toEqual([
      'denied',
      'dns',
      'icmp6',
      'revoked',
      'malformed',
    ]);
    // source shop/frontend* AND (source or destination shop/back*)
    expect(flags({ fromPod: ['shop/frontend'], pod: ['shop/back'] })).toEqual(['denied', 'revoked', 'malformed']);
    // source in ops AND (either side shop/backend*): only prober -> backend
    expect(flags({ fromNamespace: ['ops'], pod: ['shop/backend'] })).toEqual(['allowed']);
    // --namespace with --from-pod (from-pod qualified by it) and --to-namespace
    expect(flags({ namespace: ['shop'], fromPod: ['frontend'], toNamespace: ['ops'] })).toEqual(['dns']);
    // the same pod on both sides: a pod talking to itself only
    expect(flags({ fromPod: ['shop/frontend'], toPod: ['shop/frontend'] })).toEqual([]);
  });

  it('--port with --from-port / --to-port, --identity with --from-identity', () => {
    // dst port 8080 AND (src or dst port 8080)
    expect(flags({ toPort: ['8080'], port: ['8080'] })).toEqual(['denied', 'allowed', 'world', 'revoked', 'malformed']);
    // src port 43210 AND (either port 53)
    expect(flags({ fromPort: ['43210'], port: ['53'] })).toEqual(['dns']);
    // from identity 256 AND (either side 258)
    expect(flags({ fromIdentity: ['256'], identity: ['258'] })).toEqual(['dns']);
    // from identity 258 AND either side 258
    expect(flags({ fromIdentity: ['258'], identity: ['258'] })).toEqual(['allowed']);
  });

  it('--label with --from-label joins the selectors; --namespace with --label', () => {
    expect(flags({ fromLabel: ['app=frontend'], label: ['app=prober'] })).toEqual(['dns']);
    expect(flags({ namespace: ['ops'], label: ['app=frontend'] })).toEqual(['dns']);
  });

  it('--tcp-flags, --ip-version, -4/-6, --node-name, --interface, --drop-reason-desc', () => {
    expect(flags({ tcpFlags: ['SYN'] })).toEqual(['denied', 'allowed', 'world', 'malformed']);
    expect(flags({ tcpFlags: ['ACK'] })).toEqual(['revoked']);
    expect(flags({ tcpFlags: ['SYN,ACK'] })).toEqual([]);
    expect(flags({ tcpFlags: ['SYN', 'ACK'] })).toEqual(['denied', 'allowed', 'world', 'revoked', 'malformed']);
    expect(flags({ ipVersion: ['v6'] })).toEqual(['icmp6']);
    expect(flags({ ipVersion: ['v4', '4'] })).toEqual(ALL.filter((k) => k !== 'icmp6'));
    expect(flags({ nodeName: ['n'] })).toEqual(ALL);
    expect(flags({ nodeName: ['n*'] })).toEqual(ALL);
    expect(flags({ nodeName: ['other-*'] })).toEqual([]);
    expect(flags({ interface: ['wob-veth7'] })).toEqual(ALL);
    expect(flags({ interface: ['eth0'] })).toEqual([]);
    expect(flags({ dropReason: ['POLICY_DENIED', 'INVALID_PACKET_DROPPED'] })).toEqual([
      'denied',
      'world',
      'malformed',
    ]);
    expect(() => buildWhitelist({ tcpFlags: ['SYNACK'] })).toThrow(/--tcp-flags: unknown flag "SYNACK"/);
  });

  it('--not subtracts from an allowlist that combines flags', () => {
    // (from 10.230/16 AND either .10) minus flows to port 8080
    expect(flags({ fromIp: ['10.230.0.0/16'], ip: ['10.230.0.10'] }, [{ flag: 'toPort', value: '8080' }])).toEqual([
      'dns',
    ]);
    // pods of shop on either side, minus those from shop/frontend
    expect(flags({ namespace: ['shop'] }, [{ flag: 'fromPod', value: 'shop/frontend' }])).toEqual(['allowed', 'world']);
  });

  it('builds the filters hubble observe sends (what --print-raw-filters shows)', () => {
    expect(buildWhitelist({ fromIp: ['10.230.0.0/16'], ip: ['10.230.0.10'] })).toEqual([
      { source_ip: ['10.230.0.10'] },
      { source_ip: ['10.230.0.0/16'], destination_ip: ['10.230.0.10'] },
    ]);
    expect(buildWhitelist({ fromPod: ['shop/front'], pod: ['shop/frontend'] })).toEqual([
      { source_pod: ['shop/frontend'] },
      { source_pod: ['shop/front'], destination_pod: ['shop/frontend'] },
    ]);
  });
});
