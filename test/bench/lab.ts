/**
 * `lab` bench suite: how long `weir lab apply` and `weir lab delete` take until the datapath
 * enforces the change, over the conformance suite's policies and label changes (the x/y/z model,
 * three rounds), as the CLI reports it. Also reports the figures the last conformance run
 * recorded (build/lab-apply-times.json), when present. Needs root.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { BenchSection } from './run.js';
import { netpolCases, type Manifest } from '../e2e/netpol-cases.js';
import { realizedMs, testLab } from '../e2e/lab-harness.js';

const ROUNDS = Number(process.env.WEIR_BENCH_LAB_ROUNDS ?? 2);
const CLUSTER = 'examples/e2e-model/cluster.yaml';

interface Sample {
  kind: 'policy apply' | 'label change' | 'pod create' | 'delete' | 'pod delete';
  ms: number;
  compileMs: number;
}

function compileMs(stdout: string): number {
  return Number(/compile ([\d.]+) ms/.exec(stdout)?.[1] ?? 0);
}

function stats(v: number[]): { n: number; median: number; p90: number; worst: number } {
  const s = [...v].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
  return { n: s.length, median: at(0.5), p90: at(0.9), worst: s[s.length - 1] ?? 0 };
}

/** RSS and its peak (VmHWM) of a process, MiB, from /proc. */
function procMem(pid: number): { rss: number; hwm: number } {
  const st = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(st)?.[1] ?? 0);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

const fmt = (ms: number): string => (ms < 10 ? ms.toFixed(2) : ms.toFixed(1));

export async function run(): Promise<BenchSection> {
  const lab = testLab('n');
  const model = new Map<string, Manifest>();
  for (const doc of parseAllDocuments(readFileSync(CLUSTER, 'utf8'))) {
    const o = doc.toJS() as { kind: string; metadata: { name: string; namespace?: string } } | null;
    if (o)
      model.set(
        `${o.kind}/${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`,
        o as unknown as Manifest,
      );
  }
  const cases = netpolCases({ cidr4: lab.cidr4, cidr6: lab.cidr6, model });
  const samples: Sample[] = [];
  const record = (kind: Sample['kind'], stdout: string): void => {
    samples.push({ kind, ms: realizedMs(stdout), compileMs: compileMs(stdout) });
  };
  let mem: { pid: number; pods: number; up: number; end: number; peak: number } | undefined;
  try {
    const up = await lab.weir(['lab', 'up', '--cluster', CLUSTER]);
    const pid = Number(/agent pid (\d+)/.exec(`${up.stdout}\n${up.stderr}`)?.[1]);
    if (pid > 0) {
      await new Promise((r) => setTimeout(r, 2000));
      const pods = [...model.keys()].filter((k) => k.startsWith('Pod/')).length;
      mem = { pid, pods, up: procMem(pid).rss, end: 0, peak: 0 };
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of cases) {
        const applied: Manifest[] = [];
        for (const step of c.steps) {
          if (step.apply) {
            const kinds = new Set(step.apply.map((o) => o.kind));
            const kind: Sample['kind'] = kinds.has('NetworkPolicy')
              ? 'policy apply'
              : step.apply.some(
                    (o) =>
                      o.kind === 'Pod' &&
                      !model.has(
                        `Pod/${(o.metadata as { namespace: string }).namespace}/${(o.metadata as { name: string }).name}`,
                      ),
                  )
                ? 'pod create'
                : 'label change';
            record(kind, (await lab.weir(['lab', 'apply', '-f', lab.manifest(step.apply)])).stdout);
            applied.push(...step.apply);
          }
          if (step.delete)
            record('delete', (await lab.weir(['lab', 'delete', '-f', lab.manifest(step.delete)])).stdout);
        }
        const policies = applied.filter((o) => o.kind === 'NetworkPolicy');
        if (policies.length) record('delete', (await lab.weir(['lab', 'delete', '-f', lab.manifest(policies)])).stdout);
        if (c.restores?.length)
          record(
            'label change',
            (
              await lab.weir([
                'lab',
                'apply',
                '-f',
                lab.manifest(c.restores.map((r) => model.get(`${r.kind}/${r.key}`) as Manifest)),
              ])
            ).stdout,
          );
        if (c.extra?.length)
          record('pod delete', (await lab.weir(['lab', 'delete', '-f', lab.manifest(c.extra)])).stdout);
      }
    }
    if (mem) Object.assign(mem, { end: procMem(mem.pid).rss, peak: procMem(mem.pid).hwm });
  } finally {
    await lab.cleanup();
  }

  const rows: string[] = [];
  const row = (label: string, list: Sample[]): void => {
    if (list.length === 0) return;
    const t = stats(list.map((s) => s.ms));
    const c = stats(list.map((s) => s.compileMs));
    rows.push(`| ${label} | ${t.n} | ${fmt(t.median)} | ${fmt(t.p90)} | ${fmt(t.worst)} | ${fmt(c.median)} |`);
  };
  const policyChanges = samples.filter((s) => s.kind !== 'pod create' && s.kind !== 'pod delete');
  row('every apply and delete of policies and labels', policyChanges);
  for (const kind of ['policy apply', 'label change', 'delete', 'pod create', 'pod delete'] as const)
    row(
      kind,
      samples.filter((s) => s.kind === kind),
    );

  let conformance = '';
  if (existsSync('build/lab-apply-times.json')) {
    const rec = JSON.parse(readFileSync('build/lab-apply-times.json', 'utf8')) as {
      measuredAt: string;
      samples: { step: string; ms: number }[];
    };
    const policyOnly = rec.samples.filter((s) => !/new pod/.test(s.step)).map((s) => s.ms);
    const t = stats(policyOnly);
    const all = stats(rec.samples.map((s) => s.ms));
    conformance = `\nThe conformance suite's own run (${rec.measuredAt.slice(0, 16).replace('T', ' ')} UTC, probes between applies): ${t.n} policy and label applies, median **${fmt(t.median)} ms**, worst **${fmt(t.worst)} ms**; with the step that creates a pod: ${all.n} applies, worst ${fmt(all.worst)} ms.\n`;
  }
  return {
    title: 'weir lab: apply to realized datapath',
    markdown: [
      `\`weir lab apply\` / \`delete\` until the reconciler has written the maps (and, for a new pod, the network namespace exists and the programs are attached), as the CLI prints it, over the ${cases.length} conformance cases on the x/y/z model, ${ROUNDS} rounds. Milliseconds.`,
      '',
      '| change | samples | median | p90 | worst | compile median |',
      '|---|---:|---:|---:|---:|---:|',
      ...rows,
      conformance,
      mem
        ? `The lab agent's own process (\`weir lab serve\`, pid from \`weir lab up\`, RSS from /proc): ${mem.up.toFixed(1)} MiB (${((mem.up * 2 ** 20) / 1e6).toFixed(0)} MB) with the model's ${mem.pods} pods after \`lab up\`, ${mem.end.toFixed(1)} MiB after the rounds above, peak ${mem.peak.toFixed(1)} MiB. Goal: under 80 MB with 9 pods — ${(mem.up * 2 ** 20) / 1e6 < 80 ? 'met' : '**missed**'}.`
        : "The lab agent's pid was not in `weir lab up`'s output: its RSS was not measured.",
    ].join('\n'),
  };
}
