/**
 * CPU time spent while traffic runs, for benches that decide a goal on CPU time where wall time
 * cannot (a noisy machine). Two figures over the same interval:
 *
 * - machine: every CPU's busy time from /proc/stat (user + nice + system + irq + softirq: all but
 *   idle, iowait and steal), whatever ran; 10 ms resolution per CPU.
 * - tasks: the run time of the tasks that do the traffic's work — the server (/proc/PID/schedstat,
 *   ns), the kernel's ksoftirqd threads (softirq work deferred to them), this process (it reads
 *   weir's flow events, as the agent does; getrusage) — to which the caller adds the client's own
 *   (connrate reports its getrusage over its loop). Without IRQ time accounting (the kernel's
 *   CONFIG_IRQ_TIME_ACCOUNTING) softirq work runs on the clock of the task it interrupts, so the
 *   packets a task sends through the veths count in its own run time; with it, that work is
 *   counted apart and the machine's irq + softirq time is added instead.
 *   Other processes on the machine are not in this figure, only in the first.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { decide, fmt, type Interval } from './sidebyside/stats.js';

/** The unit of /proc/stat (USER_HZ, sysconf(_SC_CLK_TCK)): 100 on Linux. */
const USER_HZ = 100;

function procStat(): { busyNs: number; irqNs: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0] = line.trim().split(/\s+/).slice(1).map(Number);
  const tick = 1e9 / USER_HZ;
  return { busyNs: (user + nice + system + irq + softirq) * tick, irqNs: (irq + softirq) * tick };
}

/** Run time of one task so far (sum_exec_runtime), ns. */
function taskRunNs(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
}

function softirqThreads(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/comm`, 'utf8').startsWith('ksoftirqd/');
      } catch {
        return false;
      }
    })
    .map(Number);
}

let irqTime: boolean | undefined;

/** True when the kernel accounts irq time apart from tasks (CONFIG_IRQ_TIME_ACCOUNTING=y). */
export function irqTimeAccounted(): boolean {
  if (irqTime === undefined) {
    const config = '/proc/config.gz';
    irqTime = existsSync(config) && /^CONFIG_IRQ_TIME_ACCOUNTING=y$/m.test(gunzipSync(readFileSync(config)).toString());
  }
  return irqTime;
}

export interface CpuSnapshot {
  machineNs: number;
  tasksNs: number;
}

/** CPU used since `snapshot()`: the whole machine's, and the traffic tasks' (without the client). */
export class CpuMeter {
  private readonly softirqd = softirqThreads();

  /** @param pids the traffic's long-running tasks (the server), single-threaded. */
  constructor(private readonly pids: number[]) {}

  snapshot(): CpuSnapshot {
    const stat = procStat();
    const self = process.cpuUsage();
    const tasks =
      [...this.pids, ...this.softirqd].reduce((a, pid) => a + taskRunNs(pid), 0) +
      (self.user + self.system) * 1000 +
      (irqTimeAccounted() ? stat.irqNs : 0);
    return { machineNs: stat.busyNs, tasksNs: tasks };
  }

  since(s: CpuSnapshot): CpuSnapshot {
    const now = this.snapshot();
    return { machineNs: now.machineNs - s.machineNs, tasksNs: now.tasksNs - s.tasksNs };
  }
}

/** A connections/s goal (weir at least `target` times a peer) on wall time and on CPU time per connection. */
export interface CpuGoal {
  goal: string;
  target: number;
  /** weir's connections/s / the peer's, per round. */
  wall: Interval;
  /** the peer's CPU per connection / weir's, per round: the traffic's tasks, and the whole machine. */
  tasks: Interval;
  machine: Interval;
  /** Set when the goal is decided by another measurement: what the "decided on" column says instead. */
  decidedElsewhere?: string;
}

/** (max − min) / median of the baseline's runs between rounds: connections/s, and each CPU figure per connection. */
export interface CpuNoise {
  wall: number;
  tasks: number;
  machine: number;
}

const ci = (x: Interval): string => `${fmt(x.estimate)} [${fmt(x.lo)}, ${fmt(x.hi)}]`;

/**
 * The report's lines for goals on CPU time: what the two figures are, a table with the wall-time
 * ratio beside them, and which figure decides each goal (wall time where it can, else the traffic's
 * tasks' CPU time; the whole machine's is shown, never decides: see the text).
 */
export function cpuGoalLines(goals: CpuGoal[], noise?: CpuNoise): string[] {
  const softirq = irqTimeAccounted()
    ? "this kernel accounts irq time apart from tasks, so the machine's irq and softirq time over the run is added"
    : "this kernel does not account irq time apart from tasks, so the softirq work of the packets a task sends through the veths runs on that task's clock";
  const L = [
    '',
    `**On CPU time.** Where wall time leaves a connections/s goal undecided on this machine, it is decided on CPU time per ` +
      `connection, measured over the same connection runs of the same rounds: the peer's CPU time per connection / weir's is what ` +
      `weir's connections/s / the peer's would be if the machine were CPU bound. "Tasks": the run time of connrate's client (its ` +
      `own getrusage over its loop) and server (/proc/PID/schedstat), of the kernel's ksoftirqd threads and of the bench process ` +
      `(which reads weir's flow events as the agent does), divided by the connections made; ${softirq}. "Machine": every CPU's ` +
      `busy time from /proc/stat (user, nice, system, irq, softirq) over the run, whatever ran: it carries every other process on ` +
      `the machine too, and on the traffic's CPU, busy for the whole run in every mode, it is the wall time again, so it never ` +
      `decides. Median of the per-round ratios [bootstrap 95% interval].`,
    '',
    '| goal | target | wall time | CPU time: tasks | CPU time: machine | decided on |',
    '|---|---|---|---|---|---|',
  ];
  for (const g of goals) {
    const onWall = decide(g.wall, g.target, true);
    const onTasks = decide(g.tasks, g.target, true);
    const by = g.decidedElsewhere
      ? g.decidedElsewhere
      : !onWall.startsWith('undecided')
        ? `wall time: ${onWall}`
        : !onTasks.startsWith('undecided')
          ? `CPU time (tasks): ${onTasks}`
          : 'undecided on wall and on CPU time';
    L.push(`| ${g.goal} | ≥ ${g.target} | ${ci(g.wall)} | ${ci(g.tasks)} | ${ci(g.machine)} | ${by} |`);
  }
  if (noise) {
    const pc = (x: number): string => `${fmt(x * 100, 2)}%`;
    L.push(
      '',
      `Noise, from the baseline's runs alone ((max − min) / median between rounds): connections/s ${pc(noise.wall)}, ` +
        `CPU time per connection of the tasks ${pc(noise.tasks)}, of the machine ${pc(noise.machine)}.` +
        (noise.tasks >= 0.75 * noise.wall
          ? " The tasks' CPU time per connection moves between rounds nearly as much as the wall time does: the work of a " +
            'connection itself took more or less CPU from round to round (what else the host runs on the cores and caches this ' +
            "machine's CPUs share), not only waited for other processes, so CPU time narrows the intervals little here."
          : ''),
    );
  }
  return L;
}
