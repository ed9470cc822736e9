/**
 * The node-wide switches the lab needs (IP forwarding), shared by every lab on the machine.
 * The first lab up records each switch's value and turns it on; the last lab down puts back the
 * recorded values. Who holds the switches is a set of run dirs in one state file under /run,
 * read and written under an exclusive flock(2) of a lock file beside it (held by util-linux's
 * `flock` on a descriptor this process owns, so a crash releases it).
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** Switches the lab turns on while any lab is up. */
export const LAB_SYSCTLS = ['/proc/sys/net/ipv4/ip_forward', '/proc/sys/net/ipv6/conf/all/forwarding'] as const;

export const SYSCTL_STATE_ENV = 'WEIR_LAB_SYSCTL_STATE';
const DEFAULT_STATE = '/run/weir/lab-sysctl.json';
const LOCK_WAIT_S = 30;

export interface SysctlState {
  /** Run dirs of the labs that need the switches. */
  holders: string[];
  /** Each switch's value before the first holder turned it on. */
  saved: Record<string, string>;
}

export function sysctlStatePath(env: NodeJS.ProcessEnv = process.env): string {
  return env[SYSCTL_STATE_ENV] || DEFAULT_STATE;
}

function readSysctl(path: string): string {
  return readFileSync(path, 'utf8').trim();
}

/** Runs `fn` holding an exclusive lock on `<state>.lock` (waits up to 30 s for it). */
function withLock<T>(statePath: string, fn: () => T): T {
  mkdirSync(dirname(statePath), { recursive: true });
  const fd = openSync(`${statePath}.lock`, 'a');
  try {
    // flock(1) locks the open file description it inherits as fd 3, which is ours: the lock
    // stays after it exits, until we close the descriptor (or this process dies).
    const r = spawnSync('flock', ['-x', '-w', String(LOCK_WAIT_S), '3'], { stdio: ['ignore', 'ignore', 'pipe', fd] });
    if (r.error)
      throw new Error(
        `cannot lock ${statePath}.lock: ${r.error.message} (flock comes with util-linux: run \`make deps\`)`,
      );
    if (r.status !== 0)
      throw new Error(
        `cannot lock ${statePath}.lock within ${LOCK_WAIT_S} s: another weir lab is starting or stopping; try again`,
      );
    return fn();
  } finally {
    closeSync(fd);
  }
}

function load(statePath: string): SysctlState {
  if (!existsSync(statePath)) return { holders: [], saved: {} };
  try {
    const s = JSON.parse(readFileSync(statePath, 'utf8')) as Partial<SysctlState>;
    return { holders: Array.isArray(s.holders) ? s.holders : [], saved: s.saved ?? {} };
  } catch {
    return { holders: [], saved: {} };
  }
}

function store(statePath: string, s: SysctlState): void {
  if (s.holders.length === 0) {
    rmSync(statePath, { force: true });
    return;
  }
  const tmp = `${statePath}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(s, null, 2)}\n`);
  renameSync(tmp, statePath);
}

/**
 * The lab of `runDir` needs the switches: the first holder records their values and turns them
 * on. Holders whose run dir is gone (a lab removed without `down`) are forgotten. Idempotent.
 */
export function acquireSysctls(
  runDir: string,
  statePath = sysctlStatePath(),
  switches: readonly string[] = LAB_SYSCTLS,
): SysctlState {
  return withLock(statePath, () => {
    const s = load(statePath);
    s.holders = s.holders.filter((h) => h !== runDir && existsSync(h));
    if (s.holders.length === 0) s.saved = Object.fromEntries(switches.map((p) => [p, readSysctl(p)]));
    // Record before changing, so a crash in between still lets the last `down` restore them.
    s.holders.push(runDir);
    store(statePath, s);
    for (const p of switches) if (readSysctl(p) !== '1') writeFileSync(p, '1');
    return s;
  });
}

/**
 * The lab of `runDir` no longer needs the switches; the last holder puts back the values
 * recorded before the first. Returns the switches restored (none while other labs hold them).
 */
export function releaseSysctls(
  runDir: string,
  statePath = sysctlStatePath(),
  switches: readonly string[] = LAB_SYSCTLS,
): string[] {
  return withLock(statePath, () => {
    const s = load(statePath);
    if (!s.holders.includes(runDir)) return [];
    s.holders = s.holders.filter((h) => h !== runDir && existsSync(h));
    const restored: string[] = [];
    if (s.holders.length === 0) {
      for (const [p, v] of Object.entries(s.saved)) {
        if (!switches.includes(p) || !/^\d+$/.test(v)) continue;
        if (readSysctl(p) !== v) {
          writeFileSync(p, v);
          restored.push(p);
        }
      }
    }
    store(statePath, s);
    return restored;
  });
}
