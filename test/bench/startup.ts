/**
 * `make bench` suite "startup": how long `weir` commands take from exec to exit, as a ratio
 * to `node -e ''` measured in the same run. Every command loads only what it uses (the
 * Kubernetes client only in `weir agent` and `weir relay`), so each should stay within 3x.
 *
 * Commands: `weir --help`, `weir observe --last 10` against a flow API on a unix socket that
 * this process serves (20 flows held), and `weir policy explain` on the x/y/z fixture.
 * Rounds run the commands in a rotated order, so the machine's other load falls on all of
 * them alike; the report is each command's median and its ratio to node's median. No root.
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

const LIMIT = 3;

function timeOnce(cmd: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const c = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
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

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

export async function run(): Promise<BenchSection> {
  const rounds = Number(process.env.WEIR_BENCH_ROUNDS ?? 21);
  const dir = mkdtempSync(join(tmpdir(), 'weir-bench-startup-'));
  const observer = new Observer({ nodeName: 'bench', context: makeContext(), capacity: 100 });
  observer.ingest(Array.from({ length: 20 }, (_, i) => (i % 2 ? denied({ srcPort: 1000 + i }) : allowed())));
  const server = await startObserverServer(observer, { socketPath: join(dir, 'observer.sock') });
  const weir = ['node', 'bin/weir'];
  const commands: Array<{ name: string; cmd: string[] }> = [
    { name: "node -e ''", cmd: ['node', '-e', ''] },
    { name: 'weir --help', cmd: [...weir, '--help'] },
    {
      name: 'weir observe --last 10',
      cmd: [...weir, 'observe', '--server', join(dir, 'observer.sock'), '--last', '10'],
    },
    {
      name: 'weir policy explain',
      cmd: [...weir, 'policy', 'explain', '--from', 'y/a', '--to', 'x/b', '--port', '80', '-f', 'test/fixtures/xyz'],
    },
  ];
  const times = new Map(commands.map((c) => [c.name, [] as number[]]));
  try {
    for (const c of commands) await timeOnce(c.cmd); // warm the page cache
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < commands.length; i++) {
        const c = commands[(i + r) % commands.length]!;
        times.get(c.name)!.push(await timeOnce(c.cmd));
      }
    }
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const base = median(times.get(commands[0]!.name)!);
  const rows = commands.map((c) => {
    const m = median(times.get(c.name)!);
    const ratio = m / base;
    return `| \`${c.name}\` | ${m.toFixed(0)} | ${ratio.toFixed(2)} | ${c.name.startsWith('node') ? '' : ratio <= LIMIT ? 'yes' : '**no**'} |`;
  });
  return {
    title: 'Command start-up (suite `startup`)',
    markdown: [
      `Each command from exec to exit, ${rounds} rounds in rotated order; medians, and the ratio to`,
      "`node -e ''` measured in the same rounds. The goal is at most " + `${LIMIT}x: a command loads only`,
      'what it uses (dynamic imports: no gRPC for `--help` or `policy explain`, no Kubernetes client',
      'outside `weir agent` and `weir relay`). `observe` reads 10 of 20 flows from a flow API on a unix',
      'socket served by the bench process.',
      '',
      "| command | median ms | ratio to `node -e ''` | within 3x |",
      '|---|---|---|---|',
      ...rows,
    ].join('\n'),
  };
}
