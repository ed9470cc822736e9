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
    expect(flags({ pod: ['prober'] })).toEqual(['allowed', 'dns']);
    expect(flags({ namespace: ['shop'], pod: ['backend'] })).toEqual([
      'denied',
      'allowed',
      'world',
      'revoked',
      'malformed',
    ]);
  });

  it('--from-* and --to-* select one side', () => {
    expect(flags({ fromPod: ['prober'] })).toEqual(['allowed']);
    expect(flags({ toPod: ['prober'] })).toEqual(['dns']);
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
    expect(flags({ verdict: ['DROPPED'], pod: ['frontend'] })).toEqual(['denied', 'revoked', 'malformed']);
    expect(flags({ verdict: ['dropped'], protocol: ['tcp'], port: ['8080'], toPod: ['backend'] })).toEqual([
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
