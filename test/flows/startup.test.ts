/**
 * Start-up: each `weir` command loads only what it uses. A module resolve hook records every
 * module the built CLI loads; `--help`, `observe` and `policy explain` must not load the
 * Kubernetes client, and only `observe` may load gRPC. (How long they take is measured by
 * `make bench`, suite startup, as a ratio to `node -e ''`.)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_PIN_ROOT as CLI_PIN_ROOT } from '../../agent/cli/commands/datapath.js';
import { DEFAULT_PROBE_TIMEOUT_MS as CLI_PROBE_TIMEOUT } from '../../agent/cli/commands/lab.js';
import { DEFAULT_PIN_ROOT } from '../../agent/datapath/datapath.js';
import { DEFAULT_PROBE_TIMEOUT_MS } from '../../agent/lab/probe.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wob-startup-'));
  writeFileSync(
    join(dir, 'hooks.mjs'),
    `import { appendFileSync } from 'node:fs';
export async function resolve(spec, ctx, next) {
  const r = await next(spec, ctx);
  appendFileSync(process.env.WOB_TRACE, r.url + '\\n');
  return r;
}
`,
  );
  writeFileSync(
    join(dir, 'register.mjs'),
    `import { register } from 'node:module';\nregister(${JSON.stringify(`file://${join(dir, 'hooks.mjs')}`)});\n`,
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The modules a CLI run loaded. */
function loaded(args: string[]): string[] {
  const trace = join(dir, `trace-${Math.random().toString(36).slice(2)}`);
  writeFileSync(trace, '');
  spawnSync(process.execPath, ['--import', join(dir, 'register.mjs'), 'dist/agent/cli/main.js', ...args], {
    env: { ...process.env, WOB_TRACE: trace },
    encoding: 'utf8',
  });
  return readFileSync(trace, 'utf8').split('\n').filter(Boolean);
}

const uses = (mods: string[], pkg: string) => mods.some((m) => m.includes(`/node_modules/${pkg}/`));

describe('weir start-up loads only what a command uses', () => {
  it('--help loads neither gRPC, protobuf, the Kubernetes client, koffi, YAML nor the compiler', () => {
    const mods = loaded(['--help']);
    expect(uses(mods, 'commander')).toBe(true); // the trace works
    for (const pkg of ['@grpc/grpc-js', 'protobufjs', '@kubernetes/client-node', 'koffi', 'yaml'])
      expect([pkg, uses(mods, pkg)]).toEqual([pkg, false]);
    expect(mods.some((m) => m.includes('/agent/policy/'))).toBe(false);
  });

  it('observe loads gRPC but not the Kubernetes client; policy explain loads neither', () => {
    const obs = loaded(['observe', '--server', join(dir, 'none.sock'), '--last', '1']);
    expect(uses(obs, '@grpc/grpc-js')).toBe(true);
    expect(uses(obs, '@kubernetes/client-node')).toBe(false);
    const ex = loaded(['policy', 'explain', '--from', 'y/a', '--to', 'x/b', '--port', '80', '-f', 'test/fixtures/xyz']);
    expect(ex.some((m) => m.includes('/agent/policy/engine.js'))).toBe(true);
    expect(uses(ex, '@grpc/grpc-js')).toBe(false);
    expect(uses(ex, '@kubernetes/client-node')).toBe(false);
  });

  it('option defaults written into the CLI agree with the modules it no longer loads for help', () => {
    expect(CLI_PIN_ROOT).toBe(DEFAULT_PIN_ROOT);
    expect(CLI_PROBE_TIMEOUT).toBe(DEFAULT_PROBE_TIMEOUT_MS);
  });
});

/** bin/weir as a user runs it: from the bundle (dist/cli/weir.cjs) or, with WEIR_NO_BUNDLE, from dist/agent. */
function weir(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, ['bin/weir', ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });
}

describe('bin/weir runs the short commands from one bundled file with a code cache', () => {
  it('V8 accepts the code cache the build made', () => {
    const r = weir(['--help'], { WEIR_CODE_CACHE: 'check' });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('weir: code cache accepted');
  });

  it('the bundle answers as the compiled modules do: help, version, policy explain (allowed and denied)', () => {
    const cases = [
      ['--help'],
      ['version'],
      ['observe', '--help'],
      ['policy', 'explain', '--from', 'y/a', '--to', 'x/b', '--port', '80', '-f', 'test/fixtures/xyz'],
      ['policy', 'explain', '--from', 'z/c', '--to', 'x/a', '--port', '81', '-f', 'test/fixtures/xyz'],
    ];
    for (const args of cases) {
      const bundled = weir(args);
      const plain = weir(args, { WEIR_NO_BUNDLE: '1' });
      expect([args, bundled.status, bundled.stdout, bundled.stderr]).toEqual([
        args,
        plain.status,
        plain.stdout,
        plain.stderr,
      ]);
    }
    // the cases are not all the same answer
    expect(weir(cases[3]!).status).not.toBe(weir(cases[4]!).status);
  });

  it('commands outside the bundle load their compiled modules from dist/ (datapath, agent status)', () => {
    const r = weir(['datapath', 'show', '--pin-root', join(dir, 'no-such-pins')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('no weir datapath is pinned under');
    const s = weir(['agent', 'status', '--run-dir', join(dir, 'no-such-run')]);
    expect(s.stderr).toContain('no agent control socket at');
  });

  it('the long-running agent and relay skip the bundle and its code cache; their short subcommands do not', () => {
    const check = (args: string[]) => weir(args, { WEIR_CODE_CACHE: 'check' }).stderr;
    for (const args of [
      ['agent', '--no-such-flag'],
      ['agent', 'run', '--no-such-flag'],
      ['relay', '--no-such-flag'],
    ]) {
      const err = check(args);
      expect([args, err]).toEqual([
        args,
        expect.stringContaining('no bundle used (the agent and the relay load dist/'),
      ]);
      // and the command itself answered, from dist/
      expect(err).toMatch(/error: (unknown option '--no-such-flag'|required option)/);
    }
    for (const args of [
      ['agent', '--help'],
      ['agent', 'status', '--run-dir', join(dir, 'no-such-run')],
      ['relay', '-h'],
    ])
      expect([args, check(args)]).toEqual([args, expect.stringContaining('weir: code cache accepted')]);
  });
});
