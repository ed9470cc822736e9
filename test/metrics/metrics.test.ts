import { WeirMetrics } from '../../agent/metrics/metrics.js';
import { startMetricsServer } from '../../agent/metrics/server.js';
import type { KernelCounter } from '../../agent/metrics/sources.js';
import { Observer } from '../../agent/flows/observer.js';
import { parseExposition, sample } from './exposition.js';
import { allowed, denied, ev, makeContext } from '../flows/fixtures.js';

const ING = 0;
const EGR = 1;
const FWD = 0;
const DROP = 1;

function kernel() {
  const counters = new Map<string, KernelCounter>();
  const add = (direction: number, verdict: number, reason: number, packets: number, bytes = packets * 100) => {
    const k = `${direction}|${verdict}|${reason}`;
    const c = counters.get(k) ?? { direction, verdict, reason, packets: 0n, bytes: 0n };
    c.packets += BigInt(packets);
    c.bytes += BigInt(bytes);
    counters.set(k, c);
  };
  let lost = 0n;
  return {
    add,
    setLost: (n: number) => {
      lost = BigInt(n);
    },
    stats: {
      readCounters: () => [...counters.values()].map((c) => ({ ...c })),
      lostEvents: () => lost,
      mapUsage: () => [
        { map: 'weir_policy', entries: 4096, capacity: 16384 },
        { map: 'weir_ipcache', entries: 10, capacity: 0 },
      ],
    },
  };
}

describe('Prometheus metrics', () => {
  it('exposes kernel counters, read at scrape time, as valid text exposition', async () => {
    const k = kernel();
    k.add(ING, FWD, 1, 5); // l3-l4 allowed new connections
    k.add(ING, FWD, 7, 100); // established packets: not policy verdicts
    k.add(ING, DROP, 1, 3); // policy denied
    k.add(EGR, DROP, 4, 2); // malformed
    k.add(EGR, DROP, 2, 1); // revoked
    const m = new WeirMetrics({
      datapath: k.stats,
      controlPlane: { endpointsEnforced: () => ({ ingress: 4, egress: 1 }), identitiesInUse: () => 9 },
    });
    m.observeCompile(0.004);
    m.observeRealization(0.05);
    m.kubernetesEvent('NetworkPolicy', 'Update');
    m.kubernetesEvent('networkpolicy', 'update');

    const fams = await parseExposition(await m.text());
    const v = (name: string, labels: Record<string, string> = {}) => sample(fams, name, labels);
    expect(v('weir_policy_verdicts_total', { direction: 'ingress', match: 'l3-l4', action: 'forwarded' })).toBe(5);
    expect(v('weir_policy_verdicts_total', { direction: 'ingress', match: 'none', action: 'dropped' })).toBe(3);
    expect(v('weir_policy_verdicts_total', { direction: 'egress', match: 'revoked', action: 'dropped' })).toBe(1);
    expect(
      v('weir_policy_verdicts_total', { direction: 'ingress', match: 'established', action: 'forwarded' }),
    ).toBeUndefined();
    expect(v('weir_drops_total', { reason: 'POLICY_DENIED', direction: 'ingress' })).toBe(3);
    expect(v('weir_drops_total', { reason: 'INVALID_PACKET_DROPPED', direction: 'egress' })).toBe(2);
    expect(v('weir_drop_bytes_total', { reason: 'POLICY_DENIED', direction: 'ingress' })).toBe(300);
    expect(v('weir_forwards_total', { direction: 'ingress' })).toBe(105);
    expect(v('weir_forwards_total', { direction: 'egress' })).toBe(0);
    expect(v('weir_endpoints_enforced', { direction: 'ingress' })).toBe(4);
    expect(v('weir_identities_in_use')).toBe(9);
    expect(v('weir_map_pressure', { map: 'weir_policy' })).toBe(0.25);
    expect(v('weir_map_entries', { map: 'weir_ipcache' })).toBe(10);
    expect(v('weir_policy_compile_duration_seconds_count')).toBe(1);
    expect(v('weir_policy_compile_duration_seconds_bucket', { le: '0.005' })).toBe(1);
    expect(v('weir_policy_realization_latency_seconds_sum')).toBe(0.05);
    expect(v('weir_kubernetes_events_total', { resource: 'networkpolicy', action: 'update' })).toBe(2);

    // every family is a known type; counters end in _total, durations are in seconds
    for (const f of fams) {
      expect(['counter', 'gauge', 'histogram']).toContain(f.type);
      expect(f.name).toMatch(/^weir_/);
      if (f.type === 'counter') expect(f.samples.every((s) => s.name.endsWith('_total'))).toBe(true);
      if (f.type === 'histogram') expect(f.name).toMatch(/_seconds$/);
    }

    // counters move by exactly what the kernel counted, at the next scrape
    k.add(ING, DROP, 1, 4);
    k.add(ING, FWD, 1, 2);
    const again = await parseExposition(await m.text());
    expect(sample(again, 'weir_drops_total', { reason: 'POLICY_DENIED', direction: 'ingress' })).toBe(7);
    expect(
      sample(again, 'weir_policy_verdicts_total', { direction: 'ingress', match: 'l3-l4', action: 'forwarded' }),
    ).toBe(7);
  });

  it('reads the kernel counters once per scrape, and afresh at every scrape', async () => {
    const k = kernel();
    let reads = 0;
    const m = new WeirMetrics({ datapath: { ...k.stats, readCounters: () => (reads++, k.stats.readCounters()) } });
    await m.text();
    expect(reads).toBe(1);
    k.add(ING, DROP, 1, 1);
    const fams = await parseExposition(await m.text());
    expect(reads).toBe(2);
    expect(sample(fams, 'weir_drops_total', { reason: 'POLICY_DENIED', direction: 'ingress' })).toBe(1);
  });

  it('counts processed flows by type and verdict, and lost events by source', async () => {
    const k = kernel();
    const observer = new Observer({ context: makeContext() });
    const m = new WeirMetrics({ datapath: k.stats, observer });
    observer.ingest([denied(), denied(), allowed(), ev({ verdict: 1, dropReason: 4, match: 0 })]);
    k.setLost(12);
    const fams = await parseExposition(await m.text());
    expect(sample(fams, 'weir_flows_processed_total', { type: 'policy-verdict', verdict: 'FORWARDED' })).toBe(1);
    expect(sample(fams, 'weir_flows_processed_total', { type: 'drop', verdict: 'DROPPED' })).toBe(3);
    expect(sample(fams, 'weir_lost_events_total', { source: 'datapath_ring_buffer' })).toBe(12);
    expect(sample(fams, 'weir_lost_events_total', { source: 'flow_client_queue' })).toBe(0);
  });

  it('has per-pod series only when switched on, and caps their number', async () => {
    const observer = new Observer({ context: makeContext() });
    const off = new WeirMetrics({ observer });
    expect(await off.text()).not.toContain('weir_pod_flows_total');

    const on = new WeirMetrics({ observer, podMetrics: { enabled: true, maxPods: 1 } });
    // ingress flows count against the receiving pod: backend-0, then prober (over the cap)
    observer.ingest([denied(), denied(), ev({ dstAddr: '10.230.0.12', dstIdentity: 258, verdict: 0, match: 1 })]);
    const fams = await parseExposition(await on.text());
    expect(
      sample(fams, 'weir_pod_flows_total', {
        namespace: 'shop',
        pod: 'backend-0',
        direction: 'ingress',
        verdict: 'DROPPED',
      }),
    ).toBe(2);
    expect(
      sample(fams, 'weir_pod_flows_total', { namespace: '', pod: 'other', direction: 'ingress', verdict: 'FORWARDED' }),
    ).toBe(1);
    expect(fams.find((f) => f.name === 'weir_pod_flows')!.samples).toHaveLength(2);
    on.close();
  });

  it('serves /metrics over HTTP with the exposition content type', async () => {
    const m = new WeirMetrics({ datapath: kernel().stats });
    const srv = await startMetricsServer(m, 0, '127.0.0.1');
    try {
      const res = await fetch(srv.url);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      const fams = await parseExposition(await res.text());
      expect(fams.map((f) => f.name)).toContain('weir_forwards');
      expect((await fetch(srv.url.replace('/metrics', '/nope'))).status).toBe(404);
    } finally {
      await srv.close();
    }
  });
});

describe('metrics from agent events', () => {
  it('counts store changes by resource and action and times each realized revision', async () => {
    const { EventEmitter } = await import('node:events');
    const { recordAgentEvents } = await import('../../agent/metrics/agent-events.js');
    const events = new EventEmitter();
    const m = new WeirMetrics();
    const stop = recordAgentEvents(m, events);
    events.emit('change', { kind: 'NetworkPolicy', type: 'added' });
    events.emit('change', { kind: 'Pod', type: 'modified' });
    events.emit('change', { kind: 'Pod', type: 'modified' });
    events.emit('realized', { revision: 1, changes: 3, compileMs: 2, realizedMs: 30 });
    stop();
    events.emit('change', { kind: 'Pod', type: 'deleted' });
    const fams = await parseExposition(await m.text());
    expect(sample(fams, 'weir_kubernetes_events_total', { resource: 'networkpolicy', action: 'added' })).toBe(1);
    expect(sample(fams, 'weir_kubernetes_events_total', { resource: 'pod', action: 'modified' })).toBe(2);
    expect(sample(fams, 'weir_kubernetes_events_total', { resource: 'pod', action: 'deleted' })).toBeUndefined();
    expect(sample(fams, 'weir_policy_compile_duration_seconds_sum')).toBe(0.002);
    expect(sample(fams, 'weir_policy_realization_latency_seconds_bucket', { le: '0.025' })).toBe(0);
    expect(sample(fams, 'weir_policy_realization_latency_seconds_bucket', { le: '0.05' })).toBe(1);
  });
});
