/**
 * What `weir_build_info` reports: the package version, the git commit the build came from when
 * it can be known (`WEIR_GIT_COMMIT`, set by an image build, or the checkout's own `.git`), and the
 * Node.js version running the agent.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BuildInfo {
  version: string;
  /** Full commit id, or "unknown". */
  gitCommit: string;
  nodeVersion: string;
}

export const GIT_COMMIT_ENV = 'WEIR_GIT_COMMIT';

/** The directory of weir's package.json, searched upwards from this module (source or dist). */
function packageRoot(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'weir') return dir;
      } catch {
        /* not ours */
      }
    }
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** HEAD's commit id of the checkout at `root`, read from the files (no git binary needed). */
export function gitCommitOf(root: string): string | undefined {
  let gitDir = join(root, '.git');
  try {
    if (statSync(gitDir).isFile()) {
      const m = /^gitdir:\s*(.+)$/m.exec(read(gitDir) ?? '');
      if (!m) return undefined;
      gitDir = resolve(root, m[1]!);
    }
  } catch {
    return undefined;
  }
  const head = read(join(gitDir, 'HEAD'));
  if (!head) return undefined;
  if (/^[0-9a-f]{40}$/.test(head)) return head;
  const ref = /^ref:\s*(\S+)$/.exec(head)?.[1];
  if (!ref) return undefined;
  // A linked worktree keeps its branches in the common directory.
  const common = read(join(gitDir, 'commondir'));
  const dirs = [gitDir, ...(common ? [resolve(gitDir, common)] : [])];
  for (const d of dirs) {
    const loose = read(join(d, ref));
    if (loose && /^[0-9a-f]{40}$/.test(loose)) return loose;
  }
  for (const d of dirs) {
    for (const line of (read(join(d, 'packed-refs')) ?? '').split('\n')) {
      const [id, name] = line.split(' ');
      if (name === ref && id && /^[0-9a-f]{40}$/.test(id)) return id;
    }
  }
  return undefined;
}

let cached: BuildInfo | undefined;

export function buildInfo(env: NodeJS.ProcessEnv = process.env): BuildInfo {
  if (cached && env === process.env) return cached;
  const root = packageRoot();
  let version = 'unknown';
  if (root) {
    try {
      version =
        (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version?: string }).version ?? version;
    } catch {
      /* unknown */
    }
  }
  const fromEnv = env[GIT_COMMIT_ENV]?.trim();
  const info: BuildInfo = {
    version,
    gitCommit: fromEnv || (root ? gitCommitOf(root) : undefined) || 'unknown',
    nodeVersion: process.version,
  };
  if (env === process.env) cached = info;
  return info;
}
