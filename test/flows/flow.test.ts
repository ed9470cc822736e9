import { Enricher } from '../../agent/flows/enrich.js';
import { MonotonicClock } from '../../agent/flows/clock.js';
import { buildFlow } from '../../agent/flows/flow.js';
import { TrafficDirection, Verdict } from '../../agent/flows/types.js';
import type { Pod } from '../../agent/store/types.js';
import { allowed, denied, ev, makeContext, WORLD_CIDR_ID } from './fixtures.js';

function opts(ctx = makeContext()) {
  return { clock: new MonotonicClock(), enricher: new Enricher(ctx), nodeName: 'wob-node' };
}

describe('FlowEvent -> Flow', () => {
  it('names both pods, their namespaces, labels and identities, and the drop reason', () => {
    const f = buildFlow(denied(), opts());
    expect(f.verdict).toBe(Verdict.DROPPED);
    expect(f.drop_reason_desc).toBe(133); // Hubble's POLICY_DENIED
    expect(f.source).toMatchObject({
      namespace: 'shop',
      pod_name: 'frontend-7d9f',
      identity: 256,
      labels: ['k8s:app=frontend', 'k8s:tier=web'],
    });
    expect(f.destination).toMatchObject({ namespace: 'shop', pod_name: 'backend-0', identity: 257, ID: 11 });
    expect(f.source.ID).toBe(0); // ingress: the local endpoint is the destination
    expect(f.traffic_direction).toBe(TrafficDirection.INGRESS);
    expect(f.event_type).toEqual({ type: 1, sub_type: 133 });
    expect(f.l4.TCP).toEqual({ source_port: 43210, destination_port: 8080, flags: { SYN: true } });
    expect(f.Summary).toBe('TCP Flags: SYN');
    expect(f.interface).toEqual({ index: 7, name: 'wob-veth7' });
    expect(f.node_name).toBe('wob-node');
  });

  it('marks forwarded policy verdicts with their match kind', () => {
    const f = buildFlow(allowed({ match: 3 }), opts());
    expect(f.verdict).toBe(Verdict.FORWARDED);
    expect(f.drop_reason_desc).toBe(0);
    expect(f.event_type.type).toBe(5);
    expect(f.policy_match_type).toBe(3);
    expect(f.source.pod_name).toBe('prober');
  });

  it('describes remote addresses through identity labels: world, CIDR, reserved', () => {
    const world = buildFlow(ev({ srcAddr: '203.0.113.9', srcIdentity: WORLD_CIDR_ID }), opts());
    expect(world.source).toMatchObject({
      pod_name: '',
      namespace: '',
      labels: ['cidr:203.0.113.0/24', 'reserved:world'],
    });
    const host = buildFlow(ev({ srcAddr: '10.230.255.1', srcIdentity: 1 }), opts());
    expect(host.source.labels).toEqual(['reserved:host']);
    const node = buildFlow(ev({ srcAddr: '10.230.255.2', srcIdentity: 6 }), opts());
    expect(node.source.labels).toEqual(['reserved:remote-node']);
  });

  it('sets is_reply and the egress side for a reply leaving the pod', () => {
    const f = buildFlow(
      ev({
        direction: 1,
        flags: 1,
        srcAddr: '10.230.0.11',
        dstAddr: '10.230.0.10',
        srcPort: 8080,
        dstPort: 43210,
        tcpFlags: 0x12,
      }),
      opts(),
    );
    expect(f.is_reply).toEqual({ value: true });
    expect(f.reply).toBe(true);
    expect(f.traffic_direction).toBe(TrafficDirection.EGRESS);
    expect(f.source.ID).toBe(11);
    expect(f.Summary).toBe('TCP Flags: SYN, ACK');
  });

  it('handles IPv6, UDP, SCTP and ICMP', () => {
    const v6 = buildFlow(ev({ family: 6, srcAddr: 'fd00:230::10', dstAddr: 'fd00:230::11', protocol: 17 }), opts());
    expect(v6.IP.ipVersion).toBe(2);
    expect(v6.source.pod_name).toBe('frontend-7d9f');
    expect(v6.l4.UDP).toEqual({ source_port: 43210, destination_port: 8080 });
    expect(buildFlow(ev({ protocol: 132 }), opts()).l4.SCTP).toBeDefined();
    const icmp = buildFlow(ev({ protocol: 1, srcPort: 8, dstPort: 0 }), opts());
    expect(icmp.l4.ICMPv4).toEqual({ type: 8, code: 0 });
    expect(icmp.Summary).toBe('ICMPv4 EchoRequest');
    expect(buildFlow(ev({ protocol: 58, family: 6, srcPort: 128 }), opts()).Summary).toBe('ICMPv6 EchoRequest');
  });

  it('turns CLOCK_MONOTONIC stamps into wall-clock time', () => {
    const clock = new MonotonicClock(
      () => 5_000_000_000n,
      () => 1_700_000_000_000,
    );
    // an event stamped 1.5 s before "now"
    expect(clock.timestamp(3_500_000_000n)).toEqual({ seconds: 1_699_999_998, nanos: 500_000_000 });
  });

  it('gives flows of one tick one shared time, and a new one once the wall clock is measured again', () => {
    let mono = 5_000_000_000n;
    let wallMs = 1_700_000_000_000;
    const clock = new MonotonicClock(
      () => mono,
      () => wallMs,
    );
    const t = clock.timestamp(4_000_000_000n);
    expect(clock.timestamp(4_000_000_000n)).toBe(t);
    expect(Object.isFrozen(t)).toBe(true);
    expect(clock.timestamp(4_004_000_000n)).toEqual({ seconds: 1_699_999_999, nanos: 4_000_000 });
    // the wall clock was stepped 2 s forward; after the next measurement the same stamp reads 2 s later
    mono += 6_000_000_000n;
    wallMs += 6_000 + 2_000;
    clock.refresh();
    expect(clock.timestamp(4_004_000_000n)).toEqual({ seconds: 1_700_000_001, nanos: 4_000_000 });
  });

  it('sees store changes after the context says so', () => {
    const ctx = makeContext();
    const o = opts(ctx);
    expect(buildFlow(ev({ srcAddr: '10.230.0.99' }), o).source.pod_name).toBe('');
    const orig = ctx.podByIp;
    ctx.podByIp = (ip) => (ip === '10.230.0.99' ? { namespace: 'shop', name: 'late', labels: {} } : orig(ip));
    expect(buildFlow(ev({ srcAddr: '10.230.0.99' }), o).source.pod_name).toBe(''); // cached
    ctx.bump();
    expect(buildFlow(ev({ srcAddr: '10.230.0.99' }), o).source.pod_name).toBe('late');
  });
});

describe('EngineFlowContext', () => {
  it('finds pods by IP and identity labels from the engine, and sees changes at the next generation', async () => {
    const { EngineFlowContext } = await import('../../agent/flows/engine-context.js');
    const pod = (ns: string, name: string, ips: string[], hostNetwork = false): Pod => ({
      kind: 'Pod',
      namespace: ns,
      name,
      labels: { app: name },
      ips,
      hostNetwork,
      phase: 'Running',
      ports: [],
    });
    const pods = [
      pod('shop', 'web', ['10.230.3.1', 'fd00:230:3::1']),
      pod('kube-system', 'node-agent', ['10.230.3.254'], true),
    ];
    let revision = 1;
    const ctx = new EngineFlowContext(
      {
        listPods: () => [...pods],
        identity: (id) =>
          id === 300
            ? {
                id,
                namespace: 'shop',
                podLabels: {},
                nsLabels: {},
                labels: ['app=web', 'io.kubernetes.pod.namespace=shop'],
              }
            : undefined,
      },
      { generation: () => revision, interfaceName: (i) => (i === 4 ? 'wob-veth4' : undefined) },
    );
    expect(ctx.podByIp('fd00:230:3::1')).toEqual({ namespace: 'shop', name: 'web', labels: { app: 'web' } });
    expect(ctx.podByIp('10.230.3.254')).toBeUndefined(); // host-network pods share the node's address
    expect(ctx.identityLabels(300)).toEqual(['k8s:app=web', 'k8s:io.kubernetes.pod.namespace=shop']);
    expect(ctx.identityLabels(301)).toBeUndefined();
    expect(ctx.interfaceName(4)).toBe('wob-veth4');
    pods.push(pod('shop', 'db', ['10.230.3.2']));
    const g = ctx.generation();
    expect(ctx.podByIp('10.230.3.2')).toBeUndefined(); // same generation: the index is not rebuilt
    revision++;
    expect(ctx.generation()).not.toBe(g);
    expect(ctx.podByIp('10.230.3.2')?.name).toBe('db');
  });
});
