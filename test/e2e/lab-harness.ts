/**
 * Drives `weir lab` the way a user does, through the built CLI, for end-to-end tests.
 * Every test lab gets its own prefix, address ranges, pin root and run dir.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';

export const WEIR = resolve('bin/weir');

export interface TestLab {
  /** Prefix of this lab's namespaces, veths and pins. */
  prefix: string;
  env: NodeJS.ProcessEnv;
  runDir: string;
  cidr4: string;
  cidr6: string;
  /** Service ranges (ClusterIPs): the same block of 10.221.0.0/16 and fd00:221::/48. */
  svcCidr4: string;
  svcCidr6: string;
  weir(args: string[]): Promise<{ stdout: string; stderr: string }>;
  /** Writes manifests to a temporary file and returns its path. */
  manifest(objects: unknown[]): string;
  cleanup(): Promise<void>;
}

/** Blocks this process handed out: two labs of one file pick theirs before either routes it. */
const handedOut = new Set<number>();

/** A /24 of 10.220.0.0/16 (from .16 up) with no route on this machine yet. */
function freeBlock(): number {
  const used = execFileSync('ip', ['-4', 'route', 'show', 'table', 'all']).toString();
  for (let tries = 0; tries < 64; tries++) {
    const id = 16 + randomInt(240);
    if (handedOut.has(id) || used.includes(`10.220.${id}.`) || used.includes(`10.221.${id}.`)) continue;
    handedOut.add(id);
    return id;
  }
  throw new Error('no free /24 in 10.220.0.0/16 for a test lab: remove stale labs with `weir lab down`');
}

export interface ProbeJson {
  port: number | string;
  protocol: string;
  results: { from: string; to: string; connected: boolean }[];
}

/**
 * A lab of its own for one test file: prefix `wlb<tag><2 random chars>` and a /24 of
 * 10.220.0.0/16 (with the matching /64 of fd00:220::/48) that no other lab on this machine is
 * using, so the same tests can run at the same moment in several checkouts.
 */
export function testLab(tag: string): TestLab {
  const prefix = `wlb${tag}${randomBytes(2).toString('hex').slice(0, 2)}`;
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const runDir = join(dir, 'run');
  const id = freeBlock();
  const cidr4 = `10.220.${id}.0/24`;
  const cidr6 = `fd00:220:${id.toString(16)}::/64`;
  const svcCidr4 = `10.221.${id}.0/24`;
  const svcCidr6 = `fd00:221:${id.toString(16)}::/112`;
  const env = {
    ...process.env,
    WEIR_LAB_PREFIX: prefix,
    WEIR_LAB_CIDR4: cidr4,
    WEIR_LAB_CIDR6: cidr6,
    WEIR_LAB_SVC_CIDR4: svcCidr4,
    WEIR_LAB_SVC_CIDR6: svcCidr6,
    WEIR_LAB_PIN_ROOT: `/sys/fs/bpf/${prefix}`,
    WEIR_LAB_RUN_DIR: runDir,
    NODE_NO_WARNINGS: '1',
    WEIR_LAB_METRICS_PORT: '0',
  };
  let n = 0;
  const weir = (args: string[]): Promise<{ stdout: string; stderr: string }> =>
    new Promise((res, rej) => {
      execFile(process.execPath, [WEIR, ...args], { env, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        if (err) rej(new Error(`weir ${args.join(' ')} failed: ${stderr || err.message}\n${stdout}`));
        else res({ stdout, stderr });
      });
    });
  return {
    prefix,
    env,
    runDir,
    cidr4,
    cidr6,
    svcCidr4,
    svcCidr6,
    weir,
    manifest(objects: unknown[]): string {
      const path = join(dir, `m${n++}.yaml`);
      writeFileSync(path, objects.map((o) => stringify(o)).join('---\n'));
      return path;
    },
    async cleanup(): Promise<void> {
      // A pod agent that logged an error leaves its log in the test output before it is removed.
      const pods = join(runDir, 'pods');
      if (existsSync(pods)) {
        for (const f of readdirSync(pods).filter((x) => x.endsWith('.log'))) {
          const text = readFileSync(join(pods, f), 'utf8');
          if (/error|exception/i.test(text)) process.stderr.write(`pod agent log ${f}:\n${text.slice(-4000)}\n`);
        }
      }
      try {
        await weir(['lab', 'down']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** Parses "realized in the datapath in 12.3 ms" from apply/delete output. */
export function realizedMs(stdout: string): number {
  const m = /realized in the datapath in ([\d.]+) ms/.exec(stdout);
  if (!m) throw new Error(`no realized time in output:\n${stdout}`);
  return Number(m[1]);
}
