/**
 * `make bench`: runs every benchmark suite in order and rewrites docs/benchmarks.md.
 * A suite is a module in test/bench/ exporting `run(): Promise<BenchSection>`; add it to SUITES.
 * Run one suite with `node dist/test/bench/run.js NAME`.
 */
import { writeFileSync, readFileSync, existsSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';

export interface BenchSection {
  /** Heading of the section in docs/benchmarks.md. */
  title: string;
  /** Markdown body: tables of ratios measured side by side in this run, and notes. */
  markdown: string;
}

type Suite = {
  name: string;
  load: () => Promise<{ run: () => Promise<BenchSection> }>;
  /** Run only when named (`make soak`), never in the default `make bench`. */
  onlyWhenNamed?: boolean;
};

const SUITES: Suite[] = [
  { name: 'datapath', load: () => import('./datapath.js') },
  { name: 'svcpacket', load: () => import('./services-packet.js') },
  { name: 'nodeport', load: () => import('./nodeport-packet.js') },
  { name: 'controlplane', load: () => import('./controlplane.js') },
  { name: 'flows', load: () => import('./flows.js') },
  { name: 'sidebyside', load: () => import('./sidebyside.js') },
  { name: 'services', load: () => import('./services.js') },
  { name: 'lab', load: () => import('./lab.js') },
  { name: 'kubernetes', load: () => import('./kubernetes.js') },
  { name: 'agentmem', load: () => import('./agent-memory.js') },
  { name: 'cluster100k', load: () => import('./cluster-scale.js') },
  { name: 'startup', load: () => import('./startup.js') },
  { name: 'soak', load: () => import('./soak.js'), onlyWhenNamed: true },
];

function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return `${cpus().length} x ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}`;
}

const BEGIN = (name: string) => `<!-- bench:${name}:begin -->`;
const END = (name: string) => `<!-- bench:${name}:end -->`;

/** Replaces (or appends) one suite's section so that running one suite keeps the others. */
function splice(doc: string, name: string, body: string): string {
  const b = BEGIN(name);
  const e = END(name);
  const block = `${b}\n${body}\n${e}`;
  const i = doc.indexOf(b);
  const j = doc.indexOf(e);
  if (i >= 0 && j > i) return doc.slice(0, i) + block + doc.slice(j + e.length);
  return `${doc.trimEnd()}\n\n${block}\n`;
}

/**
 * How long `make bench` takes (goal: under 20 minutes), from the time each suite's section records
 * for its last run: the suites may come from different runs, so the total is what one full run of
 * today's suites takes, as long as each ran alone.
 */
function runtime(doc: string): string {
  const rows = SUITES.filter((s) => !s.onlyWhenNamed).map((s) => {
    const body = doc.slice(doc.indexOf(BEGIN(s.name)), doc.indexOf(END(s.name)));
    const m = /_Measured ([\d-]+ [\d:]+) UTC on [^_]*, in (\d+) s\._/.exec(body);
    return { name: s.name, seconds: m ? Number(m[2]) : undefined, at: m?.[1] };
  });
  const known = rows.filter((r) => r.seconds !== undefined);
  const total = known.reduce((a, r) => a + r.seconds!, 0);
  const lines = [
    '## How long `make bench` takes',
    '',
    "Each suite's time, from its section's last run (`make soak` is not part of `make bench`). Goal: the whole run under 20 minutes.",
    '',
    '| suite | seconds | measured |',
    '|---|---:|---|',
    ...rows.map((r) => `| ${r.name} | ${r.seconds ?? '(no time recorded yet)'} | ${r.at ?? ''} |`),
    '',
    known.length === rows.length
      ? `Total: ${(total / 60).toFixed(1)} minutes: ${total <= 20 * 60 ? 'within' : '**over**'} the 20-minute goal.`
      : `Total of the ${known.length} of ${rows.length} suites with a recorded time: ${(total / 60).toFixed(1)} minutes; the others have not run since the sections record their time.`,
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const path = 'docs/benchmarks.md';
  let doc = existsSync(path)
    ? readFileSync(path, 'utf8')
    : '# weir benchmarks\n\nWritten by `make bench`. Every comparison is a ratio measured side by side in one run.\n';
  const selected = SUITES.filter((s) => (only.length === 0 ? !s.onlyWhenNamed : only.includes(s.name)));
  for (const [i, suite] of selected.entries()) {
    process.stdout.write(`[${i + 1}/${selected.length}] ${suite.name} ...\n`);
    const t0 = Date.now();
    const section = await (await suite.load()).run();
    const seconds = Math.round((Date.now() - t0) / 1000);
    process.stdout.write(`[${i + 1}/${selected.length}] ${suite.name}: ${seconds} s\n`);
    const stamp = `_Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${machine()}, in ${seconds} s._`;
    doc = splice(doc, suite.name, `## ${section.title}\n\n${stamp}\n\n${section.markdown.trim()}\n`);
    writeFileSync(path, doc);
    process.stdout.write(`${section.markdown.trim()}\n\n`);
  }
  doc = splice(doc, 'runtime', runtime(doc));
  writeFileSync(path, doc);
  process.stdout.write(`wrote ${path}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
