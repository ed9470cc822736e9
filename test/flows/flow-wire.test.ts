/**
 * The flow writer (agent/flows/flow-wire.ts) against protobufjs, the reference it replaces on the
 * hot path: for flows built from events of every kind (both families, every protocol the builder
 * names, drops with reasons, replies, Service flows, forged sources, a context that knows nothing),
 * for flows written by hand with fields left out, and for flows decoded again (a relay's) or protobufjs's own message objects,
 * the bytes are protobufjs's own, and a response is the one protobufjs's writer composes.
 */
import { buildFlow, flowUuid } from '../../agent/flows/flow.js';
import { Enricher, emptyFlowContext, type FlowContext } from '../../agent/flows/enrich.js';
import { MonotonicClock } from '../../agent/flows/clock.js';
import { decodeFlowsResponse, encodeFlow, encodeFlowResponse, messageType } from '../../agent/flows/proto.js';
import type { FlowEvent } from '../../agent/flows/event.js';
import type { Flow } from '../../agent/flows/types.js';
import { mulberry32 } from '../prng.js';
import { denied, ev, makeContext, PODS } from './fixtures.js';
import { protobufjsFlow, protobufjsResponse } from './protobufjs-reference.js';

const reference = protobufjsFlow;
const referenceResponse = protobufjsResponse;

const withServices: FlowContext = {
  ...makeContext(),
  serviceByFrontend: (addr, port) => (port === 80 ? { namespace: 'shop', name: `web-${addr}` } : undefined),
};

/** Random events over every field the builder reads. */
function events(n: number, seed: number): FlowEvent[] {
  const r = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const v4 = [...Object.keys(PODS).filter((a) => !a.includes(':')), '203.0.113.9', '10.96.0.1'];
  const v6 = ['fd00:230::10', 'fd00:230::11', '2001:db8::1', '::1', 'fd00::a:b:c:d'];
  const out: FlowEvent[] = [];
  for (let i = 0; i < n; i++) {
    const family = r() < 0.5 ? 4 : 6;
    const addrs = family === 4 ? v4 : v6;
    const service = r() < 0.25;
    out.push(
      ev({
        tsNs: BigInt(Math.floor(r() * 2 ** 40)) * 1000n + BigInt(Math.floor(r() * 1000)),
        ifindex: 1 + Math.floor(r() * 300),
        endpointId: Math.floor(r() * 5000),
        srcIdentity: pick([0, 1, 2, 6, 9, 10, 256, 257, 258, (1 << 24) | 1, 70000]),
        dstIdentity: pick([0, 2, 256, 257, 65535]),
        srcAddr: pick(addrs),
        dstAddr: pick(addrs),
        srcPort: Math.floor(r() * 65536),
        dstPort: pick([0, 53, 80, 8080, 65535, Math.floor(r() * 65536)]),
        family,
        protocol: pick([6, 17, 132, 1, 58, 47, 0]),
        direction: Math.floor(r() * 2),
        verdict: Math.floor(r() * 3),
        match: Math.floor(r() * 6),
        dropReason: pick([0, 1, 2, 5, 9, 12, 20, 200, 255]),
        tcpFlags: Math.floor(r() * 256),
        flags: Math.floor(r() * 16),
        len: Math.floor(r() * 70000),
        ...(service ? { service: { addr: family === 4 ? '10.96.0.10' : 'fd00:96::a', port: pick([80, 443]) } } : {}),
      }),
    );
  }
  return out;
}

describe('flow writer', () => {
  const contexts: Array<[string, FlowContext]> = [
    ['a context that knows the pods and Services', withServices],
    ['a context that knows nothing', emptyFlowContext],
  ];
  it.each(contexts)('writes protobufjs bytes for built flows, %s', (_, ctx) => {
    const o = { clock: new MonotonicClock(), enricher: new Enricher(ctx), nodeName: 'wob-node' };
    let services = 0;
    for (const e of events(3000, 7)) {
      const f = buildFlow(e, o);
      if (f.destination_service_ip) services++;
      const bytes = encodeFlow(f); // gives the UUID first, as the reference then sees it
      expect(Buffer.from(bytes).equals(Buffer.from(reference(f)))).toBe(true);
      expect(encodeFlowResponse(f, 'wob-node').equals(referenceResponse(f, 'wob-node'))).toBe(true);
    }
    expect(services).toBeGreaterThan(100);
  });

  it('writes protobufjs bytes for hand-written flows with fields left out, zeros and non-ASCII text', () => {
    const o = { clock: new MonotonicClock(), enricher: new Enricher(makeContext()), nodeName: '' };
    const full = buildFlow(denied(), o);
    flowUuid(full);
    const keys = Object.keys(full) as Array<keyof Flow>;
    for (const k of keys) {
      const partial = { ...full } as Partial<Flow>;
      delete partial[k];
      expect(Buffer.from(encodeFlow(partial as Flow)).equals(Buffer.from(reference(partial as Flow)))).toBe(true);
    }
    const odd: Flow = {
      ...full,
      time: { seconds: 0, nanos: 0 },
      node_name: 'nœud-é',
      Summary: 'ünïcode ✓',
      source: { ID: 0, identity: 0, namespace: 'ns', labels: ['k8s:é=ü'], pod_name: '' },
      IP: { source: '', destination: 'fd00::1', ipVersion: 0 },
      l4: { ICMPv6: { type: 128, code: 0 } },
      length: 2 ** 31 - 1,
    };
    expect(Buffer.from(encodeFlow(odd)).equals(Buffer.from(reference(odd)))).toBe(true);
    expect(encodeFlowResponse(odd, 'nœud').equals(referenceResponse(odd, 'nœud'))).toBe(true);
  });

  it('hands protobufjs what it does not write itself: negative numbers, decoded messages', () => {
    const o = { clock: new MonotonicClock(), enricher: new Enricher(makeContext()), nodeName: 'n1' };
    const f = buildFlow(denied(), o);
    const negative: Flow = { ...f, uuid: 'u', policy_match_type: -1, time: { seconds: -5, nanos: 3 } };
    expect(Buffer.from(encodeFlow(negative)).equals(Buffer.from(reference(negative)))).toBe(true);
    expect(encodeFlowResponse(negative, 'n1').equals(referenceResponse(negative, 'n1'))).toBe(true);
    // a relay re-sends flows it decoded: plain objects with every default set (nulls, zeros, [])
    const decoded = decodeFlowsResponse(encodeFlowResponse(f, 'n1')).flow!;
    expect(Buffer.from(encodeFlow(decoded)).equals(Buffer.from(reference(decoded)))).toBe(true);
    expect(encodeFlowResponse(decoded, 'n1').equals(referenceResponse(decoded, 'n1'))).toBe(true);
    // protobufjs's own message objects, defaults on their prototype
    const message = messageType('Flow').decode(encodeFlow(f)) as unknown as Flow;
    expect(Object.getPrototypeOf(message)).not.toBe(Object.prototype);
    expect(Buffer.from(encodeFlow(message)).equals(Buffer.from(reference(message)))).toBe(true);
    expect(encodeFlowResponse(message, 'n1').equals(referenceResponse(message, 'n1'))).toBe(true);
  });

  it('encodes a flow once per node name and keeps the response out of the flow as users see it', () => {
    const o = { clock: new MonotonicClock(), enricher: new Enricher(makeContext()), nodeName: 'n1' };
    const f = buildFlow(denied(), o);
    const a = encodeFlowResponse(f, 'n1');
    expect(encodeFlowResponse(f, 'n1')).toBe(a);
    const b = encodeFlowResponse(f, 'n2');
    expect(b.equals(referenceResponse(f, 'n2'))).toBe(true);
    expect(Object.keys(f)).not.toContain('response');
    expect(JSON.parse(JSON.stringify(f))).toEqual(JSON.parse(JSON.stringify({ ...f })));
    expect(decodeFlowsResponse(a).flow!.uuid).toBe(f.uuid);
  });
});
