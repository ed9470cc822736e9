import { Enricher } from '../../agent/flows/enrich.js';
import { MonotonicClock } from '../../agent/flows/clock.js';
import { buildFlow } from '../../agent/flows/flow.js';
import {
  formatCompact,
  formatDict,
  formatJson,
  formatJsonpb,
  formatTable,
  tableRow,
  formatTime,
} from '../../agent/flows/format.js';
import { decodeFlowsResponse, encodeFlowResponse } from '../../agent/flows/proto.js';
import { parseSince, buildRequest } from '../../agent/cli/commands/observe.js';
import { allowed, denied, ev, makeContext, WORLD_CIDR_ID } from './fixtures.js';

const o = { clock: new MonotonicClock(), enricher: new Enricher(makeContext()), nodeName: 'wob-node' };

describe('weir observe output', () => {
  it('compact: time, pods with ports and identities, reason, direction, verdict, flags', () => {
    const f = buildFlow(denied(), o);
    expect(formatCompact(f)).toBe(
      `${formatTime(f)}: shop/frontend-7d9f:43210 (ID:256) -> shop/backend-0:8080 (ID:257) Policy denied INGRESS DROPPED (TCP Flags: SYN)`,
    );
    // the same flow after a round trip over the wire (proto3 gives absent strings as ""): no Service
    const wire = decodeFlowsResponse(encodeFlowResponse(f, 'wob-node'));
    expect(formatCompact(wire.flow!)).not.toContain('via service');
    const a = buildFlow(allowed({ match: 2 }), o);
    expect(formatCompact(a)).toMatch(
      /: ops\/prober:43210 \(ID:258\) -> shop\/backend-0:8080 \(ID:257\) policy-verdict:l3-only INGRESS FORWARDED \(TCP Flags: SYN\)$/,
    );
  });

  it('compact: world and IPv6 addresses, replies drawn from the server side', () => {
    const w = buildFlow(ev({ srcAddr: '203.0.113.9', srcIdentity: WORLD_CIDR_ID, protocol: 17, match: 4 }), o);
    expect(formatCompact(w)).toContain(
      '203.0.113.9:43210 (ID:16777217) -> shop/backend-0:8080 (ID:257) policy-verdict:all INGRESS FORWARDED (UDP)',
    );
    const host = buildFlow(
      ev({ srcAddr: 'fd00:230::1', family: 6, srcIdentity: 1, protocol: 58, srcPort: 128, dstPort: 0, match: 6 }),
      o,
    );
    expect(formatCompact(host)).toContain(
      'fd00:230::1 (host) -> shop/backend-0 (ID:257) policy-verdict:host INGRESS FORWARDED (ICMPv6 EchoRequest)',
    );
    const w6 = buildFlow(ev({ srcAddr: '2001:db8::9', family: 6, srcIdentity: 10, match: 4 }), o);
    expect(formatCompact(w6)).toContain('[2001:db8::9]:43210 (world-ipv6) -> shop/backend-0:8080 (ID:257)');
    expect(w6.source?.labels).toEqual(['reserved:world-ipv6', 'reserved:world']);
    const reply = buildFlow(
      ev({
        flags: 1,
        direction: 1,
        srcAddr: '10.230.0.11',
        srcIdentity: 257,
        dstAddr: '10.230.0.10',
        dstIdentity: 256,
        srcPort: 8080,
        dstPort: 43210,
        match: 7,
      }),
      o,
    );
    expect(formatCompact(reply)).toContain('shop/frontend-7d9f:43210 (ID:256) <- shop/backend-0:8080 (ID:257)');
  });

  it('compact: colors only when asked', () => {
    const f = buildFlow(denied(), o);
    expect(formatCompact(f)).not.toContain('\x1b[');
    expect(formatCompact(f, { color: true })).toContain('\x1b[31mDROPPED\x1b[0m');
  });

  it('jsonpb: the whole response in protobuf JSON with Hubble names, enum names and RFC 3339 time, after a wire round trip', () => {
    const f = buildFlow(denied(), o);
    const r = decodeFlowsResponse(encodeFlowResponse(f, 'wob-node'));
    const j = JSON.parse(formatJsonpb(r)) as { flow: Record<string, unknown>; node_name: string; time: string };
    expect(j.node_name).toBe('wob-node');
    expect(j.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    expect(j.flow).toMatchObject({
      verdict: 'DROPPED',
      drop_reason_desc: 'POLICY_DENIED',
      traffic_direction: 'INGRESS',
      Type: 'L3_L4',
      IP: { source: '10.230.0.10', destination: '10.230.0.11', ipVersion: 'IPv4' },
      l4: { TCP: { source_port: 43210, destination_port: 8080, flags: { SYN: true } } },
      source: {
        identity: 256,
        namespace: 'shop',
        pod_name: 'frontend-7d9f',
        labels: ['k8s:app=frontend', 'k8s:tier=web'],
      },
      destination: { identity: 257, namespace: 'shop', pod_name: 'backend-0', ID: 11 },
      is_reply: false,
      event_type: { type: 1, sub_type: 133 },
      Summary: 'TCP Flags: SYN',
    });
    expect(j.flow.time).toBe(j.time);
    // default values are left out, as protobuf's JSON mapping does
    expect(j.flow.source).not.toHaveProperty('ID');
    expect(j.flow).not.toHaveProperty('policy_match_type');
    const fwd = (
      JSON.parse(formatJsonpb(decodeFlowsResponse(encodeFlowResponse(buildFlow(allowed(), o), 'wob-node')))) as {
        flow: Record<string, unknown>;
      }
    ).flow;
    expect(fwd.verdict).toBe('FORWARDED');
    expect(fwd.policy_match).toBe('MATCH_L3_L4');
    expect(fwd).not.toHaveProperty('drop_reason_desc');
    expect(fwd.is_reply).toBe(false);
  });

  it('json: each flow object alone, as Hubble prints -o json', () => {
    const r = decodeFlowsResponse(encodeFlowResponse(buildFlow(denied(), o), 'wob-node'));
    const j = JSON.parse(formatJson(r.flow!)) as Record<string, unknown>;
    expect(j).toMatchObject({ verdict: 'DROPPED', drop_reason_desc: 'POLICY_DENIED', node_name: 'wob-node' });
    expect(j).not.toHaveProperty('flow');
    expect(j.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  });

  it('dict: one field a line, names aligned, records separated; node names and time layouts on request', () => {
    const f = buildFlow(denied(), o);
    const first = formatDict(f, {}, true).split('\n');
    expect(first[0]).toBe(`  TIMESTAMP: ${formatTime(f)}`);
    expect(first).toContain('DESTINATION: shop/backend-0:8080');
    expect(first).toContain('    VERDICT: DROPPED');
    expect(formatDict(f, { nodeName: true }).split('\n').slice(0, 3)).toEqual([
      '------------',
      `  TIMESTAMP: ${formatTime(f)}`,
      '       NODE: wob-node',
    ]);
    expect(formatCompact(f, { nodeName: true })).toContain(`${formatTime(f)} [wob-node]: shop/frontend-7d9f`);
    const t = { ...f, time: { seconds: 1764000000, nanos: 123456789 } };
    const tz = process.env.TZ;
    expect(formatTime(t, 'RFC3339Nano')).toMatch(/^2025-11-2\dT\d\d:\d\d:00\.123456789(Z|[+-]\d\d:\d\d)$/);
    expect(formatTime(t, 'RFC3339Milli')).toMatch(/:00\.123(Z|[+-]\d\d:\d\d)$/);
    expect(formatTime(t, 'RFC3339Micro')).toMatch(/:00\.123456(Z|[+-]\d\d:\d\d)$/);
    expect(formatTime(t, 'RFC3339')).toMatch(/T\d\d:\d\d:00(Z|[+-]\d\d:\d\d)$/);
    expect(formatTime(t, 'RFC1123Z')).toMatch(/^\w{3}, \d\d Nov 2025 \d\d:\d\d:00 [+-]\d{4}$/);
    expect(formatTime(t)).toMatch(/^Nov \d\d \d\d:\d\d:00\.123$/);
    expect(tz).toBe(process.env.TZ);
  });

  it('table: aligned columns under a header', () => {
    const rows = [tableRow(buildFlow(denied(), o)), tableRow(buildFlow(allowed(), o))];
    const lines = formatTable(rows).split('\n');
    expect(lines[0]).toMatch(/^TIMESTAMP\s+SOURCE\s+DESTINATION\s+TYPE\s+VERDICT\s+SUMMARY$/);
    expect(lines).toHaveLength(3);
    const col = lines[0]!.indexOf('VERDICT');
    expect(lines[1]!.slice(col, col + 7)).toBe('DROPPED');
    expect(lines[2]!.slice(col, col + 9)).toBe('FORWARDED');
  });
});

describe('weir observe request', () => {
  it('asks for the last 20 flows by default, none of the past when following', () => {
    expect(buildRequest({}, {}, [])).toMatchObject({ number: 20, follow: false, whitelist: [], blacklist: [] });
    expect(buildRequest({ follow: true }, {}, []).number).toBeUndefined();
    expect(buildRequest({ follow: true, last: '5' }, {}, []).number).toBe(5);
    expect(buildRequest({ first: '3' }, {}, [])).toMatchObject({ first: true, number: 3 });
    expect(() => buildRequest({ first: '3', follow: true }, {}, [])).toThrow(/--first and --follow exclude each other/);
    expect(() => buildRequest({ last: 'ten' }, {}, [])).toThrow(/--last: "ten" is not a number of flows/);
  });

  it('parses --since as a duration or a time', () => {
    expect(parseSince('90s', 1_700_000_100_000)).toEqual({ seconds: 1_700_000_010, nanos: 0 });
    expect(parseSince('2026-01-02T15:04:05Z')).toEqual({ seconds: 1767366245, nanos: 0 });
    expect(() => parseSince('yesterday')).toThrow(/--since: "yesterday" is neither a duration/);
  });
});

describe('weir observe errors', () => {
  it('says which flow API it could not reach and what to do', async () => {
    const { unreachable } = await import('../../agent/cli/commands/observe.js');
    expect(
      unreachable(
        '/run/weir/observer.sock',
        'No connection established. Last error: Error: connect ECONNREFUSED /run/weir/observer.sock. Resolution note: ',
      ),
    ).toBe(
      'cannot reach the flow API at /run/weir/observer.sock (connect ECONNREFUSED /run/weir/observer.sock): is the lab or the agent running? (weir lab up, or --server ADDRESS)',
    );
  });
});
