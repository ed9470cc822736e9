/**
 * The bench's own instruments, without root: the phase clock, the CPU meter, the ping-pong and the
 * connection client's CPU figure over loopback, and which figure decides a goal on CPU time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { CpuMeter, cpuGoalLines } from '../bench/cpu-time.js';
import { PhaseClock } from '../bench/phases.js';
import { connrateBinary } from '../bench/sidebyside/traffic.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function burn(ms: number): void {
  const end = Date.now() + ms;
  let x = 0;
  while (Date.now() < end) x += Math.sqrt(x + 1);
  if (x < 0) throw new Error('unreachable');
}

describe('PhaseClock', () => {
  it('sums each phase over its runs and puts the untimed rest under "other"', async () => {
    const clock = new PhaseClock();
    await clock.time('measuring', () => sleep(120));
    await clock.time('programming', () => sleep(40));
    await clock.time('measuring', () => sleep(120));
    await sleep(60);
    const s = new Map(clock.seconds());
    expect(s.get('measuring')).toBeGreaterThanOrEqual(0.23);
    expect(s.get('programming')).toBeGreaterThanOrEqual(0.035);
    expect(s.get('programming')).toBeLessThan(s.get('measuring')!);
    expect(s.get('other')).toBeGreaterThanOrEqual(0.05);
    expect(clock.seconds()[0]![0]).toBe('measuring'); // largest first
    expect(clock.summary()).toMatch(/^measuring 0 s, .*\(of 0 s\)$/);
  });

  it('counts a phase that throws', async () => {
    const clock = new PhaseClock();
    await expect(clock.time('set-up', () => sleep(30).then(() => Promise.reject(new Error('no'))))).rejects.toThrow(
      'no',
    );
    expect(new Map(clock.seconds()).get('set-up')).toBeGreaterThanOrEqual(0.025);
  });
});

describe('CpuMeter', () => {
  it("counts this process's CPU among the tasks, and the machine's at least as much", () => {
    const meter = new CpuMeter([]);
    const s = meter.snapshot();
    burn(300);
    const d = meter.since(s);
    expect(d.tasksNs).toBeGreaterThan(0.2e9);
    expect(d.tasksNs).toBeLessThan(0.6e9);
    expect(d.machineNs).toBeGreaterThan(0.2e9); // /proc/stat: 10 ms resolution per CPU
  });

  it("counts a listed task's run time, not an idle one's", () => {
    const busy = spawn(process.execPath, ['-e', 'const e = Date.now() + 400; while (Date.now() < e);']);
    const idle = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 400)']);
    try {
      const a = new CpuMeter([busy.pid!]);
      const b = new CpuMeter([idle.pid!]);
      const sa = a.snapshot();
      const sb = b.snapshot();
      execFileSync('sleep', ['0.25']);
      expect(a.since(sa).tasksNs - b.since(sb).tasksNs).toBeGreaterThan(0.15e9);
    } finally {
      busy.kill('SIGKILL');
      idle.kill('SIGKILL');
    }
  });
});

describe('cpuGoalLines', () => {
  const iv = (estimate: number, lo: number, hi: number) => ({ estimate, lo, hi });
  const row = (lines: string[], goal: string) => lines.find((l) => l.startsWith(`| ${goal} |`)) ?? '';

  it('decides on wall time where it can, else on the tasks CPU time, never on the machine figure', () => {
    const lines = cpuGoalLines([
      {
        goal: 'wall decides',
        target: 0.95,
        wall: iv(0.99, 0.96, 1.0),
        tasks: iv(0.9, 0.8, 0.94),
        machine: iv(1, 1, 1),
      },
      {
        goal: 'cpu decides',
        target: 0.95,
        wall: iv(0.99, 0.89, 1.01),
        tasks: iv(0.97, 0.96, 0.98),
        machine: iv(0.5, 0.4, 0.6),
      },
      { goal: 'cpu misses', target: 1, wall: iv(0.99, 0.9, 1.05), tasks: iv(0.9, 0.85, 0.95), machine: iv(2, 2, 2) },
      { goal: 'neither', target: 0.95, wall: iv(0.95, 0.9, 1), tasks: iv(0.95, 0.94, 0.96), machine: iv(2, 2, 2) },
    ]);
    expect(row(lines, 'wall decides')).toMatch(/\| wall time: met \|$/);
    expect(row(lines, 'cpu decides')).toMatch(/\| CPU time \(tasks\): met \|$/);
    expect(row(lines, 'cpu misses')).toMatch(/\| CPU time \(tasks\): \*\*missed\*\* \|$/);
    expect(row(lines, 'neither')).toMatch(/\| undecided on wall and on CPU time \|$/);
  });

  it("prints the baseline's noise, and says when CPU time is hardly less noisy than wall time", () => {
    const g = { goal: 'g', target: 1, wall: iv(1, 1, 1), tasks: iv(1, 1, 1), machine: iv(1, 1, 1) };
    const alike = cpuGoalLines([g], { wall: 0.07, tasks: 0.06, machine: 0.2 }).join('\n');
    expect(alike).toMatch(/connections\/s 7\.0%, CPU time per connection of the tasks 6\.0%, of the machine 20%/);
    expect(alike).toMatch(/narrows the intervals little/);
    const cleaner = cpuGoalLines([g], { wall: 0.07, tasks: 0.01, machine: 0.2 }).join('\n');
    expect(cleaner).toMatch(/of the tasks 1\.0%/);
    expect(cleaner).not.toMatch(/narrows the intervals little/);
    expect(cpuGoalLines([g]).join('\n')).not.toMatch(/Noise/);
  });
});

describe('connrate over loopback', () => {
  let bin: string;
  const servers: ChildProcess[] = [];
  const start = async (mode: string, port: number): Promise<void> => {
    const p = spawn(bin, [mode, '127.0.0.1', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
    servers.push(p);
    await new Promise<void>((res, rej) => {
      p.stdout!.on('data', (d: Buffer) => (d.toString().includes('listening') ? res() : undefined));
      p.once('exit', (code) => rej(new Error(`connrate ${mode} exited (${code})`)));
    });
  };
  beforeAll(async () => {
    bin = await connrateBinary('build/bench');
  }, 60_000);
  afterAll(() => servers.forEach((p) => p.kill('SIGKILL')));

  it('ping-pong: latency percentiles over the messages after the 0.4 s warm-up', async () => {
    const port = 20000 + (process.pid % 20000);
    await start('echo', port);
    const r = JSON.parse(execFileSync(bin, ['pingpong', '127.0.0.1', String(port), '0.7']).toString()) as {
      samples: number;
      p50: number;
      p99: number;
    };
    expect(r.samples).toBeGreaterThan(100);
    expect(r.p50).toBeGreaterThan(0);
    expect(r.p99).toBeGreaterThanOrEqual(r.p50);
    expect(r.p50).toBeLessThan(10_000);
  });

  it('connections: the client reports the CPU time of its own loop', async () => {
    const port = 20001 + (process.pid % 20000);
    await start('server', port);
    const r = JSON.parse(execFileSync(bin, ['client', '127.0.0.1', String(port), '0.3']).toString()) as {
      connections: number;
      seconds: number;
      cpuSeconds: number;
    };
    expect(r.connections).toBeGreaterThan(10);
    expect(r.cpuSeconds).toBeGreaterThan(0);
    expect(r.cpuSeconds).toBeLessThanOrEqual(r.seconds * 1.2); // one thread
  });
});
