/**
 * The Grafana dashboard shipped with the chart only queries metrics the agent exports,
 * grouped by labels those metrics have.
 */
import { readFileSync } from 'node:fs';
import { WeirMetrics } from '../../agent/metrics/metrics.js';
import { Observer } from '../../agent/flows/observer.js';

interface Panel {
  id: number;
  type: string;
  title: string;
  targets?: Array<{ expr: string }>;
  gridPos: { x: number; y: number; w: number; h: number };
}

const dash = JSON.parse(readFileSync('charts/weir/dashboards/weir.json', 'utf8')) as { uid: string; panels: Panel[] };

async function exported(): Promise<Map<string, { type: string; labels: Set<string> }>> {
  const m = new WeirMetrics({ observer: new Observer(), podMetrics: { enabled: true, maxPods: 1 } });
  // label names are declared on the metric objects; read them from the registry
  const out = new Map<string, { type: string; labels: Set<string> }>();
  for (const json of await m.registry.getMetricsAsJSON()) {
    const labelNames = (m.registry.getSingleMetric(json.name) as unknown as { labelNames?: string[] }).labelNames ?? [];
    out.set(json.name, { type: String(json.type), labels: new Set(labelNames) });
  }
  m.close();
  return out;
}

describe('Grafana dashboard', () => {
  it('covers verdicts, drops by reason, flows, map pressure and enforcement latency', () => {
    const exprs = dash.panels
      .flatMap((p) => p.targets ?? [])
      .map((t) => t.expr)
      .join('\n');
    for (const name of [
      'weir_policy_verdicts_total',
      'weir_drops_total',
      'weir_flows_processed_total',
      'weir_map_pressure',
      'weir_policy_realization_latency_seconds_bucket',
    ]) {
      expect(exprs).toContain(name);
    }
    expect(exprs).toMatch(/sum by \(reason\) \(rate\(weir_drops_total/);
  });

  it('queries only exported metrics, by labels they have', async () => {
    const metrics = await exported();
    const problems: string[] = [];
    for (const p of dash.panels) {
      for (const t of p.targets ?? []) {
        const names = t.expr.match(/weir_[a-z_]+/g) ?? [];
        const groups = [...t.expr.matchAll(/by \(([^)]*)\)/g)].flatMap((g) => g[1]!.split(',').map((s) => s.trim()));
        const selectors = [...t.expr.matchAll(/\{([^}]*)\}/g)].flatMap((g) =>
          [...g[1]!.matchAll(/([a-z_]+)\s*(?:=~|!=|!~|=)/g)].map((x) => x[1]!),
        );
        for (const n of names) {
          const base = metrics.has(n) ? n : n.replace(/_(bucket|sum|count)$/, '');
          const m = metrics.get(base);
          if (!m) {
            problems.push(`${p.title}: ${n} is not exported`);
            continue;
          }
          const allowed = new Set([...m.labels, 'instance', 'job', 'node', ...(m.type === 'histogram' ? ['le'] : [])]);
          for (const l of [...groups, ...selectors])
            if (!allowed.has(l)) problems.push(`${p.title}: ${n} has no label ${l}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('selects label values as the agent spells them (lower snake case)', () => {
    const bad: string[] = [];
    for (const p of dash.panels)
      for (const t of p.targets ?? [])
        for (const m of t.expr.matchAll(/([a-z_]+)\s*(=~|!=|!~|=)\s*"([^"]*)"/g))
          if (!m[3]!.startsWith('$') && !/^[a-z0-9_|]*$/.test(m[3]!)) bad.push(`${p.title}: ${m[1]}${m[2]}"${m[3]}"`);
    expect(bad).toEqual([]);
  });

  it('has unique panel ids and panels that do not overlap', () => {
    const ids = dash.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const p of dash.panels) {
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
        for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
          const c = `${x},${y}`;
          expect(cells.has(c) ? `${p.title} overlaps at ${c}` : '').toBe('');
          cells.add(c);
        }
      }
      expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
    }
  });
});
