/**
 * `make bench` suite "startup": how long `weir` commands take from exec to exit, as a ratio
 * to `node -e ''` measured in the same run. Every command loads only what it uses (the
 * Kubernetes client only in `weir agent` and `weir relay`), so each should stay within 3x.
 *
 * Commands: `weir --help`, `weir observe --last 10` against a flow API on a unix socket that
 * this process serves (20 flows held), and `weir policy explain` on the x/y/z fixture.
 * bin/weir runs these from the bundled CLI with its V8 code cache (scripts/bundle-cli.mjs);
 * `observe` is also timed from the compiled modules one by one (WEIR_NO_BUNDLE=1) beside it.
 * Rounds run the commands in a rotated order, so the machine's other load falls on all of
 * them alike; the report is each command's median, and the median of its per-round ratio to
 * `node -e ''` with a 95% bootstrap interval over the rounds. No root.
 * Rounds: WEIR_BENCH_ROUNDS (default 21).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Observer } from '../../agent/flows/observer.js';
import { startObserverServer } from '../../agent/flows/server.js';
import { allowed, denied, makeContext } from '../flows/fixtures.js';
import type { BenchSection } from './run.js';
import { bootstrap, median } from './sidebyside/stats.js';

const LIMIT = 3;

function timeOnce(cmd: string[], env?: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const c = spawn(cmd[0]!, cmd.slice(1), {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: env && { ...process.env, ...env },
    });
    let err = '';
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('error', reject);
    c.on('exit', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      // explain exits 2 for a denied connection; anything else is a broken command
      if (code !== 0 && code !== 2) reject(new Error(`${cmd.join(' ')} exited ${code}: ${err}`));
      else resolve(ms);
    });
  });
}

export async function run(): Promise<BenchSection> {
  const rounds = Number(process.env.WEIR_BENCH_ROUNDS ?? 21);
  const dir = mkdtempSync(join(tmpdir(), 'weir-bench-startup-'));
  const observer = new Observer({ nodeName: 'bench', context: makeContext(), capacity: 100 });
  observer.ingest(Array.from({ length: 20 }, (_, i) => (i % 2 ? denied({ srcPort: 1000 + i }) : allowed())));
  const server = await startObserverServer(observer, { socketPath: join(dir, 'observer.sock') });
  const weir = ['node', 'bin/weir'];
  const observe = [...weir, 'observe', '--server', join(dir, 'observer.sock'), '--last', '10'];
  const commands: Array<{ name: string; cmd: string[]; env?: Record<string, string> }> = [
    { name: "node -e ''", cmd: ['node', '-e', ''] },
    { name: 'weir --help', cmd: [...weir, '--help'] },
    { name: 'weir observe --last 10', cmd: observe },
    {
      name: 'weir observe --last 10, modules one by one (WEIR_NO_BUNDLE=1)',
      cmd: observe,
      env: { WEIR_NO_BUNDLE: '1' },
    },
    {
      name: 'weir policy explain',
      cmd: [...weir, 'policy', 'explain', '--from', 'y/a', '--to', 'x/b', '--port', '80', '-f', 'test/fixtures/xyz'],
    },
  ];
  const times = new Map(commands.map((c) => [c.name, [] as number[]]));
  try {
    for (const c of commands) await timeOnce(c.cmd, c.env); // warm the page cache
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < commands.length; i++) {
        const c = commands[(i + r) % commands.length]!;
        times.get(c.name)!.push(await timeOnce(c.cmd, c.env));
      }
    }
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const node = times.get(commands[0]!.name)!;
  const rows = commands.map((c, i) => {
    const t = times.get(c.name)!;
    if (i === 0) return `| \`${c.name}\` | ${median(t).toFixed(0)} | 1 | |`;
    // per-round ratios: both times of a ratio from the same round
    const ci = bootstrap(
      t.map((x, r) => x / node[r]!),
      median,
    );
    const goal = c.env ? 'reference' : ci.hi <= LIMIT ? 'yes' : ci.lo > LIMIT ? '**no**' : 'undecided';
    return `| \`${c.name}\` | ${median(t).toFixed(0)} | ${ci.estimate.toFixed(2)} [${ci.lo.toFixed(2)}, ${ci.hi.toFixed(2)}] | ${goal} |`;
  });
  return {
    title: 'Command start-up (suite `startup`)',
    markdown: [
      `Each command from exec to exit, ${rounds} rounds in rotated order; median times, and the median of`,
      "each round's ratio to `node -e ''` (measured in the same round) with its 95% bootstrap interval",
      `over the rounds. The goal is at most ${LIMIT}x, met when the whole interval is at or below it. A command`,
      'loads only what it uses (no gRPC for `--help` or `policy explain`, no Kubernetes client outside',
      '`weir agent` and `weir relay`), and `bin/weir` runs the short commands from the CLI bundled into',
      'one file with a V8 code cache made at build time (`scripts/bundle-cli.mjs`; Node 20 has no',
      '`module.enableCompileCache`): no module resolving, and no compiling of what the cache holds.',
      '`observe` reads 10 of 20 flows from a flow API on a unix socket served by the bench process;',
      'the row marked WEIR_NO_BUNDLE=1 is the same command loading the compiled modules one by one.',
      '',
      "| command | median ms | ratio to `node -e ''` [95% interval] | within 3x |",
      '|---|---|---|---|',
      ...rows,
    ].join('\n'),
  };
}
