/**
 * The built `weir observe` against a flow API in this process: what it prints, and that a
 * reader who stops reading its output makes it stop taking flows (the agent drops them for
 * it, bounded) rather than buffer them without end. Needs `make build` (dist/).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Observer } from '../../agent/flows/observer.js';
import { startObserverServer, type ObserverServer } from '../../agent/flows/server.js';
import { allowed, denied, makeContext } from './fixtures.js';

const WEIR = resolve('bin/weir');
let dir: string;
let observer: Observer;
let server: ObserverServer;
let sock: string;
const children: ChildProcess[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wob-cli-'));
  sock = join(dir, 'observer.sock');
  observer = new Observer({ nodeName: 'wob-node', context: makeContext() });
  server = await startObserverServer(observer, { socketPath: sock });
});

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const c = spawn(process.execPath, [WEIR, 'observe', '--server', sock, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(c);
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('close', (code) => res({ code, stdout, stderr }));
  });
}

const until = async (cond: () => boolean, ms = 20_000) => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('weir observe (built CLI)', () => {
  it('prints the filtered last flows, compact by default', async () => {
    observer.ingest([denied({ srcPort: 1111 }), allowed({ srcPort: 2222 }), denied({ srcPort: 3333 })]);
    const r = await run(['--verdict', 'DROPPED', '--color', 'always']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain('shop/frontend-7d9f:1111');
    expect(lines[0]).toContain('\x1b[31mDROPPED\x1b[0m');
    const bad = await run(['--protocol', 'http']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('protocol: unknown "http"');
  });

  it("Hubble's flags: short forms, -o json / jsonpb / dict, --all, --print-node-name, --time-format, --print-raw-filters", async () => {
    observer.ingest([
      denied({ srcPort: 1111 }),
      allowed({ srcPort: 2222 }),
      denied({ srcPort: 3333, family: 6, srcAddr: 'fd00:230::10', dstAddr: 'fd00:230::11' }),
    ]);
    const json = (await run(['-t', 'drop', '-4', '-o', 'json'])).stdout.trim().split('\n');
    expect(json).toHaveLength(1);
    expect(JSON.parse(json[0]!)).toMatchObject({ verdict: 'DROPPED', l4: { TCP: { source_port: 1111 } } });
    const pb = JSON.parse((await run(['-n', 'ops', '-o', 'jsonpb'])).stdout.trim()) as Record<string, unknown>;
    expect(pb).toMatchObject({ node_name: 'wob-node', flow: { source: { pod_name: 'prober' } } });
    expect((await run(['--all', '-6'])).stdout.trim().split('\n')).toHaveLength(1);
    const dict = (await run(['-l', 'app=prober', '-o', 'dict', '--print-node-name'])).stdout;
    expect(dict).toContain('       NODE: wob-node\n');
    expect(dict).toContain('     SOURCE: ops/prober:2222');
    const t = (await run(['--since', '1h43m', '--time-format', 'RFC3339Nano', '--last', '1'])).stdout;
    expect(t).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d): /);
    const raw = await run([
      '--from-pod',
      'shop/front',
      '--pod',
      'frontend',
      '--not',
      '--verdict',
      'FORWARDED',
      '--print-raw-filters',
    ]);
    expect(raw.stdout).toBe(
      [
        'allowlist:',
        `    - '{"source_pod":["shop/front"],"destination_pod":["default/frontend"]}'`,
        'denylist:',
        `    - '{"verdict":[1]}'`,
        '',
      ].join('\n'),
    );
    const help = await new Promise<string>((res) => {
      const c = spawn(process.execPath, [WEIR, 'observe', '--help'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      c.stdout.on('data', (d: Buffer) => (out += d.toString()));
      c.on('close', () => res(out));
    });
    expect(help).toContain('A pod given without a namespace is in "default"');
  });

  it('-o table when following prints its header first', async () => {
    const c = spawn(process.execPath, [WEIR, 'observe', '--server', sock, '-f', '-o', 'table'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(c);
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await until(() => observer.status().connectedClients === 1);
    observer.ingest([denied({ srcPort: 4444 })]);
    await until(() => out.includes(':4444'));
    const lines = out.trim().split('\n');
    expect(lines[0]).toMatch(/^TIMESTAMP\s+SOURCE\s+DESTINATION\s+TYPE\s+VERDICT\s+SUMMARY$/);
    expect(lines[1]).toContain('shop/frontend-7d9f:4444');
    c.kill('SIGINT');
  });

  it('stops taking flows while its output is not read, so the agent drops them for it', async () => {
    const c = spawn(process.execPath, [WEIR, 'observe', '--server', sock, '--follow', '--color', 'never'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    children.push(c);
    c.stdout.pause(); // nobody reads what it prints
    await until(() => observer.status().connectedClients === 1);
    // slowly enough that a client reading into memory would take every flow
    const N = 24_000;
    for (let i = 0; i < N; i += 200) {
      observer.ingest(Array.from({ length: 200 }, (_, j) => denied({ srcPort: (i + j) % 65536 })));
      await new Promise((r) => setTimeout(r, 40));
    }
    await new Promise((r) => setTimeout(r, 500));
    const st = observer.status();
    const taken = st.seenFlows - st.clientDroppedFlows;
    // what it took is what fits in its pipe, its buffers and the per-client queue (4096) and window (256)
    expect(taken).toBeLessThan(12_000);
    expect(st.clientDroppedFlows).toBe(N - taken);
  }, 60_000);
});
