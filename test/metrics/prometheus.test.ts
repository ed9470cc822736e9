/**
 * Real Prometheus (Debian's `prometheus` and `promtool`) scraping a lab agent's /metrics with the
 * relabelings the chart's ServiceMonitor declares (read from `helm template`; the Kubernetes
 * service-discovery labels they read are given as static target labels, as the pod's node would
 * set them), `promtool check metrics` on a scrape, traffic through the lab, and then every PromQL
 * expression of the Grafana dashboard, with its template variables substituted as Grafana does,
 * evaluated through Prometheus's HTTP API over the test's time range: each returns data.
 * Needs root (the lab) and `make tools` (helm). Prometheus runs with a data dir of its own, on a
 * free loopback port, for at most ten minutes, and is stopped by pid.
 *
 * @requires root
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { testLab } from '../e2e/lab-harness.js';

const HELM = resolve('.tools/bin/helm');
const SCRAPE_SECONDS = 1;
/** Grafana's $__rate_interval: max($__interval + scrape interval, 4 x scrape interval). */
const RATE_INTERVAL = `${4 * SCRAPE_SECONDS}s`;
const NODE = 'lab-node';

const lab = testLab('q');
const dir = mkdtempSync(join(tmpdir(), 'weir-prom-'));
let prometheus: ChildProcess | undefined;
let promUrl = '';
let metricsUrl = '';
let startedAt = 0;
const log: string[] = [];

const run = (cmd: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((done) => {
    const child = execFile(cmd, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(input ?? '');
  });

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface PromResponse<T> {
  status: string;
  data: T;
  error?: string;
}
async function api<T>(path: string, params: Record<string, string | string[]>): Promise<T> {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const x of Array.isArray(v) ? v : [v]) q.append(k, x);
  const res = (await (await fetch(`${promUrl}/api/v1/${path}?${q}`)).json()) as PromResponse<T>;
  if (res.status !== 'success') throw new Error(`prometheus ${path} ${q}: ${res.error}`);
  return res.data;
}
type Matrix = {
  resultType: string;
  result: Array<{ metric: Record<string, string>; values: Array<[number, string]> }>;
};
type Vector = { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };

type Relabel = Record<string, unknown>;

/** The ServiceMonitor endpoint's relabelings and metricRelabelings, as Prometheus writes them. */
function chartRelabelings(rendered: string): { relabel_configs: Relabel[]; metric_relabel_configs: Relabel[] } {
  const sm = parseAllDocuments(rendered)
    .map((d) => d.toJS() as { kind?: string; spec?: { endpoints?: Array<Record<string, unknown>> } } | null)
    .find((o) => o?.kind === 'ServiceMonitor');
  if (!sm?.spec?.endpoints?.[0]) throw new Error('the chart renders no ServiceMonitor endpoint');
  const snake: Record<string, string> = { sourceLabels: 'source_labels', targetLabel: 'target_label' };
  const convert = (list: unknown): Relabel[] =>
    ((list ?? []) as Relabel[]).map((r) =>
      Object.fromEntries(
        Object.entries(r).map(([k, v]) => [snake[k] ?? k, k === 'action' ? String(v).toLowerCase() : v]),
      ),
    );
  const endpoint = sm.spec.endpoints[0];
  return {
    relabel_configs: convert(endpoint.relabelings),
    metric_relabel_configs: convert(endpoint.metricRelabelings),
  };
}

const namespace = (name: string) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
const pod = (ns: string, name: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { namespace: ns, name, labels: { app: name } },
  spec: { containers: [{ name: 'app', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }] },
});
const dbFromWeb = (port: string | number) => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { namespace: 'shop', name: 'db-from-web' },
  spec: {
    podSelector: { matchLabels: { app: 'db' } },
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }], ports: [{ port }] }],
  },
});

async function probe(from: string, to: string): Promise<boolean> {
  const out = await lab.weir([
    'lab',
    'probe',
    '--from',
    from,
    '--to',
    to,
    '--port',
    'http',
    '--timeout',
    '300',
    '-o',
    'json',
  ]);
  return (JSON.parse(out.stdout) as { results: Array<{ connected: boolean }> }).results.every((r) => r.connected);
}

beforeAll(async () => {
  if (process.getuid?.() !== 0)
    throw new Error('the lab creates network namespaces and loads BPF programs: run the tests as root');
  await lab.weir([
    'lab',
    'up',
    '--cluster',
    lab.manifest([namespace('shop'), namespace('ops'), pod('shop', 'web'), pod('shop', 'db'), pod('ops', 'probe')]),
  ]);
  const st = JSON.parse((await lab.weir(['lab', 'status'])).stdout) as { metricsUrl?: string };
  if (!st.metricsUrl) throw new Error('the lab serves no metrics');
  metricsUrl = st.metricsUrl;
  const target = new URL(metricsUrl);

  const rendered = await run(HELM, ['template', 'weir', 'charts/weir', '--set', 'metrics.serviceMonitor.enabled=true']);
  if (rendered.code !== 0) throw new Error(`helm template failed: ${rendered.stderr}`);
  const config = {
    global: { scrape_interval: `${SCRAPE_SECONDS}s`, scrape_timeout: `${SCRAPE_SECONDS}s`, evaluation_interval: '1s' },
    scrape_configs: [
      {
        job_name: 'weir',
        metrics_path: target.pathname,
        static_configs: [
          {
            targets: [target.host],
            // What Kubernetes service discovery would set for the agent pod of node NODE.
            labels: { __meta_kubernetes_pod_node_name: NODE, __meta_kubernetes_namespace: 'kube-system' },
          },
        ],
        ...chartRelabelings(rendered.stdout),
      },
    ],
  };
  writeFileSync(join(dir, 'prometheus.yml'), stringify(config));
  const check = await run('promtool', ['check', 'config', join(dir, 'prometheus.yml')]);
  if (check.code !== 0) throw new Error(`promtool check config: ${check.stdout}${check.stderr}`);

  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  // `timeout` bounds its life even if this test process dies without its afterAll.
  prometheus = spawn(
    'timeout',
    [
      '-s',
      'KILL',
      '600',
      'prometheus',
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  prometheus.stdout!.on('data', (d: Buffer) => log.push(d.toString()));
  prometheus.stderr!.on('data', (d: Buffer) => log.push(d.toString()));
  startedAt = Date.now() / 1000;
  for (let i = 0; ; i++) {
    const ready = await fetch(`${promUrl}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (prometheus.exitCode !== null || i > 300) throw new Error(`prometheus did not start:\n${log.join('')}`);
    await sleep(100);
  }
}, 120_000);

afterAll(async () => {
  if (prometheus?.pid !== undefined && prometheus.exitCode === null) {
    process.kill(prometheus.pid, 'SIGTERM');
    await new Promise((r) => prometheus!.once('exit', r));
  }
  rmSync(dir, { recursive: true, force: true });
  await lab.cleanup();
}, 60_000);

it("promtool check metrics finds nothing to fix in a scrape of the agent but prom-client's runtime gauges", async () => {
  const text = await (await fetch(metricsUrl)).text();
  expect(text).toContain('weir_policy_verdicts_total');
  const r = await run('promtool', ['check', 'metrics'], text);
  const problems = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim() !== '');
  // prom-client's own nodejs_active_*_total gauges draw a naming lint; weir's families draw none.
  expect(problems.filter((l) => !/^nodejs_active_\w+_total non-counter metrics/.test(l))).toEqual([]);
  expect(r.code === 0 || problems.length > 0).toBe(true);
});

it('every query of the Grafana dashboard returns data after traffic in the lab', async () => {
  // Traffic and policy changes while Prometheus scrapes: allowed and denied connections, a policy
  // applied and changed (compile and realization latency), over several scrape intervals.
  await lab.weir(['lab', 'apply', '-f', lab.manifest([dbFromWeb('http')])]);
  for (let round = 0; round < 6; round++) {
    expect(await probe('shop/web', 'shop/db')).toBe(true);
    expect(await probe('ops/probe', 'shop/db')).toBe(false);
    // The port by number and by name in turn: the same connections allowed, a new compile each time.
    await lab.weir(['lab', 'apply', '-f', lab.manifest([dbFromWeb(round % 2 === 0 ? 8080 : 'http')])]);
    await sleep(1200);
  }
  // Scraped, with the ServiceMonitor's relabeling applied: `node` comes from the pod's node name.
  for (let i = 0; ; i++) {
    const v = await api<Vector>('query', { query: 'sum(weir_drops_total{job="weir"})' });
    if (Number(v.result[0]?.value[1] ?? 0) > 0) break;
    if (i > 100) throw new Error(`prometheus has not scraped the drops:\n${log.join('')}`);
    await sleep(200);
  }
  await sleep(3 * SCRAPE_SECONDS * 1000);
  const up = await api<Vector>('query', { query: 'up{job="weir"}' });
  expect(up.result.map((r) => ({ node: r.metric.node, up: r.value[1] }))).toEqual([{ node: NODE, up: '1' }]);
  expect(up.result[0]!.metric).not.toHaveProperty('__meta_kubernetes_pod_node_name');

  const dash = JSON.parse(readFileSync('charts/weir/dashboards/weir.json', 'utf8')) as {
    templating?: {
      list: Array<{
        name: string;
        type: string;
        query?: { query?: string } | string;
        allValue?: string;
        includeAll?: boolean;
      }>;
    };
    panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
  };
  // Template variables: the query ones are label_values(metric, label), evaluated here; "All" is
  // selected (Grafana's default for these), which Grafana writes as allValue or as the regex of every value.
  const vars: Record<string, string> = { __rate_interval: RATE_INTERVAL, __interval: `${SCRAPE_SECONDS}s` };
  for (const v of dash.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
    const m = /^label_values\((\w+),\s*(\w+)\)$/.exec(q.trim());
    if (!m) throw new Error(`variable ${v.name}: unsupported query ${q}`);
    const values = await api<string[]>(`label/${m[2]}/values`, { 'match[]': m[1]! });
    expect({ variable: v.name, values: values.length > 0 }).toEqual({ variable: v.name, values: true });
    vars[v.name] =
      v.includeAll && v.allValue
        ? v.allValue
        : `(${values.map((x) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})`;
  }
  const substitute = (expr: string) =>
    expr.replace(/\$\{(\w+)\}|\$(\w+)/g, (all, a?: string, b?: string) => vars[(a ?? b)!] ?? all);

  const end = Date.now() / 1000;
  const results: Record<string, string> = {};
  for (const p of dash.panels) {
    for (const t of p.targets ?? []) {
      const expr = substitute(t.expr);
      expect(expr).not.toMatch(/\$/);
      const m = await api<Matrix>('query_range', {
        query: expr,
        start: String(startedAt),
        end: String(end),
        step: `${SCRAPE_SECONDS}s`,
      });
      const finite = m.result.flatMap((s) => s.values).filter(([, v]) => Number.isFinite(Number(v)));
      results[`${p.title}: ${t.expr}`] = finite.length > 0 ? 'data' : `no data (${m.result.length} series)`;
    }
  }
  expect(Object.keys(results).length).toBe(dash.panels.flatMap((p) => p.targets ?? []).length);
  expect(Object.keys(results).length).toBeGreaterThan(0);
  expect(results).toEqual(Object.fromEntries(Object.keys(results).map((k) => [k, 'data'])));
  process.stdout.write(
    `dashboard: ${Object.values(results).filter((v) => v === 'data').length} of ${Object.keys(results).length} queries return data\n`,
  );
}, 120_000);
