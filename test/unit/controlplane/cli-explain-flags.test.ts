/** `weir policy explain` flags: manifests from standard input (-f -), -n NAMESPACE, port names in --port. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { runExplain, type ExplainOptions } from '../../../agent/cli/commands/explain.js';

function run(args: Partial<ExplainOptions>, stdin?: string): { code: number; out: string } {
  let out = '';
  const code = runExplain(
    { port: 80, protocol: 'TCP', filename: ['test/fixtures/xyz'], output: 'text', ...args },
    (s) => (out += s),
    () => undefined,
    () => stdin ?? '',
  );
  return { code, out };
}

const fixture = ['cluster.yaml', 'policies.yaml']
  .map((f) => readFileSync(`test/fixtures/xyz/${f}`, 'utf8'))
  .join('\n---\n');

describe('weir policy explain flags', () => {
  it('-f - reads the manifests from standard input, alone or with files', () => {
    expect(run({ from: 'y/a', to: 'x/b', filename: ['-'] }, fixture)).toMatchObject({ code: 0 });
    expect(run({ from: 'y/b', to: 'x/b', filename: ['-'] }, fixture)).toMatchObject({ code: 2 });
    expect(() => run({ from: 'y/a', to: 'x/b', filename: ['-', '-'] }, fixture)).toThrow(/can be given once/);
    const r = spawnSync(
      'node',
      ['dist/agent/cli/main.js', 'policy', 'explain', '--from', 'y/a', '--to', 'x/b', '--port', '80', '-f', '-'],
      { input: fixture, encoding: 'utf8' },
    );
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('y/a -> x/b TCP/80: ALLOWED');
  });

  it('-n gives pods without a namespace theirs; without -n they are in default', () => {
    expect(run({ from: 'a', to: 'b', namespace: 'x' }).out).toContain('x/a -> x/b TCP/80');
    expect(run({ from: 'y/a', to: 'b', namespace: 'x' }).out).toContain('y/a -> x/b TCP/80: ALLOWED');
    expect(() => run({ from: 'a', to: 'x/b' })).toThrow(/no pod default\/a in the manifests/);
  });

  it('--port takes a container port name of the destination pod', () => {
    const r = run({ from: 'y/a', to: 'x/b', port: 'serve-80-tcp' });
    expect(r.code).toBe(0);
    expect(r.out).toContain('y/a -> x/b TCP/80: ALLOWED');
    expect(run({ from: 'y/a', to: 'x/b', port: 'serve-81-tcp' }).out).toContain('TCP/81');
    expect(() => run({ from: 'y/a', to: 'x/b', port: 'nope' })).toThrow(/x\/b has no TCP container port named "nope"/);
    expect(() => run({ matrix: true, port: 'serve-80-tcp' })).toThrow(/--matrix needs a port number/);
    const bad = spawnSync(
      'node',
      ['dist/agent/cli/main.js', 'policy', 'explain', '--from', 'y/a', '--to', 'x/b', '--port', 'Bad_Name', '-f', 'x'],
      { encoding: 'utf8' },
    );
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('must be a port number 1-65535 or a container port name');
  });
});
