import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { WeirMetrics } from '../../agent/metrics/metrics.js';
import { DROP_REASONS, MATCH_NAMES } from '../../agent/flows/names.js';
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
      serviceCounters: () => ({
        NEW: 4n,
        FORWARD: 40n,
        REVERSE: 39n,
        HAIRPIN: 1n,
        NO_BACKEND: 2n,
        SNAT_NEW: 3n,
        SNAT_FULL: 1n,
      }),
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
    k.add(ING, FWD, 1, 5); // l3_l4 allowed new connections
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
    expect(v('weir_policy_verdicts_total', { direction: 'ingress', match: 'l3_l4', action: 'forwarded' })).toBe(5);
    expect(v('weir_policy_verdicts_total', { direction: 'ingress', match: 'none', action: 'dropped' })).toBe(3);
    expect(v('weir_policy_verdicts_total', { direction: 'egress', match: 'revoked', action: 'dropped' })).toBe(1);
    expect(
      v('weir_policy_verdicts_total', { direction: 'ingress', match: 'established', action: 'forwarded' }),
    ).toBeUndefined();
    expect(v('weir_drops_total', { reason: 'policy_denied', direction: 'ingress' })).toBe(3);
    expect(v('weir_drops_total', { reason: 'invalid_packet_dropped', direction: 'egress' })).toBe(2);
    expect(v('weir_service_translations_total', { kind: 'new_connection' })).toBe(4);
    expect(v('weir_service_translations_total', { kind: 'masquerade' })).toBe(3);
    expect(v('weir_service_translations_total', { kind: 'reverse' })).toBe(39);
    expect(v('weir_service_no_backend_drops_total')).toBe(2);
    expect(v('weir_drops_total', { reason: 'service_backend_not_found', direction: 'egress' })).toBe(0);
    expect(v('weir_drop_bytes_total', { reason: 'policy_denied', direction: 'ingress' })).toBe(300);
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

    // every weir family is a known type; counters end in _total, durations are in seconds
    for (const f of fams.filter((x) => x.name.startsWith('weir_'))) {
      expect(['counter', 'gauge', 'histogram']).toContain(f.type);
      if (f.type === 'counter') expect(f.samples.every((s) => s.name.endsWith('_total'))).toBe(true);
      if (f.type === 'histogram') expect(f.name).toMatch(/_seconds$/);
    }

    // counters move by exactly what the kernel counted, at the next scrape
    k.add(ING, DROP, 1, 4);
    k.add(ING, FWD, 1, 2);
    const again = await parseExposition(await m.text());
    expect(sample(again, 'weir_drops_total', { reason: 'policy_denied', direction: 'ingress' })).toBe(7);
    expect(
      sample(again, 'weir_policy_verdicts_total', { direction: 'ingress', match: 'l3_l4', action: 'forwarded' }),
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
    expect(sample(fams, 'weir_drops_total', { reason: 'policy_denied', direction: 'ingress' })).toBe(1);
  });

  it('counts processed flows by type and verdict, and lost events by source', async () => {
    const k = kernel();
    const observer = new Observer({ context: makeContext() });
    const m = new WeirMetrics({ datapath: k.stats, observer });
    observer.ingest([denied(), denied(), allowed(), ev({ verdict: 1, dropReason: 4, match: 0 })]);
    k.setLost(12);
    const fams = await parseExposition(await m.text());
    expect(sample(fams, 'weir_flows_processed_total', { type: 'policy_verdict', verdict: 'forwarded' })).toBe(1);
    expect(sample(fams, 'weir_flows_processed_total', { type: 'drop', verdict: 'dropped' })).toBe(3);
    expect(sample(fams, 'weir_lost_events_total', { source: 'datapath_ring_buffer' })).toBe(12);
    expect(sample(fams, 'weir_lost_events_total', { source: 'flow_client_queue' })).toBe(0);
  });

  it('exports the conntrack mid-stream misses (evictions, as the datapath sees them) by direction', async () => {
    const k = kernel();
    const m = new WeirMetrics({ datapath: { ...k.stats, conntrackMisses: () => ({ ingress: 3n, egress: 1n }) } });
    const text = await m.text();
    expect(text).toMatch(
      /# HELP weir_conntrack_midstream_misses_total TCP packets without SYN, .*found no conntrack entry/,
    );
    const fams = await parseExposition(text);
    expect(sample(fams, 'weir_conntrack_midstream_misses_total', { direction: 'ingress' })).toBe(3);
    expect(sample(fams, 'weir_conntrack_midstream_misses_total', { direction: 'egress' })).toBe(1);
  });

  it('has per-pod series only when switched on, named by source and destination, and caps their number', async () => {
    const ctx = makeContext();
    const observer = new Observer({ context: ctx });
    const off = new WeirMetrics({ observer });
    expect(await off.text()).not.toContain('weir_pod_flows_total');

    const on = new WeirMetrics({ observer, podMetrics: { enabled: true, maxPods: 2 } });
    // frontend -> backend-0 twice (denied), then to a third pod, over the cap (as "other")
    observer.ingest([denied(), denied(), ev({ dstAddr: '10.230.0.12', dstIdentity: 258, verdict: 0, match: 1 })]);
    const fams = await parseExposition(await on.text());
    const pods = fams.find((f) => f.name === 'weir_pod_flows')!;
    // Prometheus adds namespace and pod for the scraped target: weir's own labels must not collide
    for (const s of pods.samples) {
      expect(Object.keys(s.labels).sort()).toEqual([
        'destination_namespace',
        'destination_pod',
        'direction',
        'source_namespace',
        'source_pod',
        'verdict',
      ]);
    }
    expect(
      sample(fams, 'weir_pod_flows_total', {
        source_namespace: 'shop',
        source_pod: 'frontend-7d9f',
        destination_namespace: 'shop',
        destination_pod: 'backend-0',
        direction: 'ingress',
        verdict: 'dropped',
      }),
    ).toBe(2);
    expect(
      sample(fams, 'weir_pod_flows_total', {
        source_namespace: 'shop',
        source_pod: 'frontend-7d9f',
        destination_namespace: '',
        destination_pod: 'other',
        direction: 'ingress',
        verdict: 'forwarded',
      }),
    ).toBe(1);
    expect(pods.samples).toHaveLength(2);

    // the store changed (new endpoint objects from the enricher): the same pods count on the same
    // series, the other direction and verdict on their own
    ctx.bump();
    observer.ingest([denied(), denied({ direction: 1, verdict: 0, match: 1 })]);
    const after = await parseExposition(await on.text());
    const frontendToBackend = {
      source_namespace: 'shop',
      source_pod: 'frontend-7d9f',
      destination_namespace: 'shop',
      destination_pod: 'backend-0',
    };
    expect(
      sample(after, 'weir_pod_flows_total', { ...frontendToBackend, direction: 'ingress', verdict: 'dropped' }),
    ).toBe(3);
    expect(
      sample(after, 'weir_pod_flows_total', { ...frontendToBackend, direction: 'egress', verdict: 'forwarded' }),
    ).toBe(1);
    on.close();
  });

  it('exports process and Node.js runtime metrics, and weir_build_info', async () => {
    const m = new WeirMetrics({ build: { version: '1.2.3', gitCommit: 'abc123', nodeVersion: 'v20.0.0' } });
    const fams = await parseExposition(await m.text());
    const names = fams.map((f) => f.name);
    for (const n of [
      'process_cpu_seconds',
      'process_resident_memory_bytes',
      'process_open_fds',
      'process_start_time_seconds',
      'nodejs_eventloop_lag_seconds',
      'nodejs_heap_size_used_bytes',
      'nodejs_gc_duration_seconds',
    ])
      expect(names).toContain(n);
    expect(sample(fams, 'weir_build_info', { version: '1.2.3', git_commit: 'abc123', node_version: 'v20.0.0' })).toBe(
      1,
    );
    // by default: this package's version, the checkout's commit, the running Node.js
    const own = await parseExposition(await new WeirMetrics({ defaultMetrics: false }).text());
    const info = own.find((f) => f.name === 'weir_build_info')!.samples[0]!.labels;
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    expect(info).toEqual({
      version: pkg.version,
      git_commit: execFileSync('git', ['rev-parse', 'HEAD']).toString().trim(),
      node_version: process.version,
    });
    expect(own.some((f) => f.name.startsWith('process_'))).toBe(false);
  });

  it('exports every known series of each labelled counter at zero before anything happened', async () => {
    const k = kernel();
    const fams = await parseExposition(await new WeirMetrics({ datapath: k.stats, observer: new Observer() }).text());
    const zero = (name: string, labels: Record<string, string>) =>
      expect([`${name} ${JSON.stringify(labels)}`, sample(fams, name, labels)]).toEqual([
        `${name} ${JSON.stringify(labels)}`,
        0,
      ]);
    for (const direction of ['ingress', 'egress']) {
      for (const match of ['l3_l4', 'l3_only', 'l4_only', 'all', 'not_isolated', 'host', 'always'])
        zero('weir_policy_verdicts_total', { direction, match, action: 'forwarded' });
      zero('weir_policy_verdicts_total', { direction, match: 'none', action: 'dropped' });
      zero('weir_policy_verdicts_total', { direction, match: 'revoked', action: 'dropped' });
      for (const reason of [
        'policy_denied',
        'policy_revoked',
        'ct_truncated_or_invalid_header',
        'invalid_packet_dropped',
        'first_logical_datagram_fragment_not_found',
        'unsupported_l3_protocol',
        'ct_map_insertion_failed',
      ]) {
        zero('weir_drops_total', { reason, direction });
        zero('weir_drop_bytes_total', { reason, direction });
      }
      zero('weir_forwards_total', { direction });
      zero('weir_forward_bytes_total', { direction });
    }
    zero('weir_flows_processed_total', { type: 'policy_verdict', verdict: 'forwarded' });
    zero('weir_flows_processed_total', { type: 'drop', verdict: 'dropped' });
    zero('weir_lost_events_total', { source: 'datapath_ring_buffer' });
    zero('weir_lost_events_total', { source: 'flow_client_queue' });
    for (const resource of ['namespace', 'pod', 'networkpolicy', 'node'])
      for (const action of ['added', 'modified', 'deleted']) zero('weir_kubernetes_events_total', { resource, action });
  });

  it('spells every label value of its own metrics in lower snake case', async () => {
    const k = kernel();
    for (const { code } of DROP_REASONS) k.add(ING, DROP, code, 1);
    for (let match = 0; match < MATCH_NAMES.length; match++) k.add(EGR, FWD, match, 1);
    const observer = new Observer({ context: makeContext() });
    const m = new WeirMetrics({ datapath: k.stats, observer, podMetrics: { enabled: true, maxPods: 10 } });
    observer.ingest([denied(), allowed()]);
    m.kubernetesEvent('NetworkPolicy', 'Modified');
    const bad: string[] = [];
    // names of Kubernetes objects are the user's, and stay as written
    const names = new Set(['source_namespace', 'source_pod', 'destination_namespace', 'destination_pod', 'le']);
    for (const f of await parseExposition(await m.text())) {
      if (!f.name.startsWith('weir_') || f.name === 'weir_build_info') continue;
      for (const s of f.samples)
        for (const [label, value] of Object.entries(s.labels))
          if (!names.has(label) && !/^[a-z0-9_]*$/.test(value)) bad.push(`${s.name}{${label}="${value}"}`);
    }
    expect(bad).toEqual([]);
    m.close();
  });

  it("passes promtool's checks for weir's own metric families", async () => {
    const k = kernel();
    k.add(ING, DROP, 1, 3);
    const observer = new Observer({ context: makeContext() });
    const m = new WeirMetrics({ datapath: k.stats, observer, podMetrics: { enabled: true, maxPods: 10 } });
    observer.ingest([denied(), allowed()]);
    const r = spawnSync('promtool', ['check', 'metrics'], { input: await m.text() });
    m.close();
    expect(r.error).toBeUndefined();
    const problems = `${r.stdout.toString()}${r.stderr.toString()}`.split('\n').filter((l) => l.trim() !== '');
    // prom-client's own nodejs_active_*_total gauges draw a naming lint; weir's families draw none
    expect(problems.filter((l) => !/^nodejs_active_\w+_total non-counter metrics/.test(l))).toEqual([]);
  });

  it('refuses a port in use with an error that keeps the system code (what the lab falls back on)', async () => {
    const m = new WeirMetrics({ defaultMetrics: false });
    const first = await startMetricsServer(m, 0, '127.0.0.1');
    try {
      const err = (await startMetricsServer(m, first.port, '127.0.0.1').then(
        () => undefined,
        (e: unknown) => e,
      )) as NodeJS.ErrnoException;
      expect(err.code).toBe('EADDRINUSE');
      expect(err.message).toBe(
        `cannot serve metrics on 127.0.0.1:${first.port}: the port is in use; pick another with --metrics-port`,
      );
    } finally {
      await first.close();
    }
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
    expect(sample(fams, 'weir_kubernetes_events_total', { resource: 'pod', action: 'deleted' })).toBe(0);
    expect(sample(fams, 'weir_policy_compile_duration_seconds_sum')).toBe(0.002);
    expect(sample(fams, 'weir_policy_realization_latency_seconds_bucket', { le: '0.025' })).toBe(0);
    expect(sample(fams, 'weir_policy_realization_latency_seconds_bucket', { le: '0.05' })).toBe(1);
  });
});
