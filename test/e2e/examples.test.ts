/**
 * The examples enforce what their comments promise, through `weir lab` with the datapath.
 * Needs root; CI runs it as root.
 *
 * @requires root
 */
import { testLab, type ProbeJson } from './lab-harness.js';

const lab = testLab('e');

async function table(port: string, extra: string[] = []): Promise<Record<string, boolean>> {
  const r = JSON.parse(
    (await lab.weir(['lab', 'probe', '--port', port, '--timeout', '800', '-o', 'json', ...extra])).stdout,
  ) as ProbeJson;
  return Object.fromEntries(r.results.map((x) => [`${x.from} -> ${x.to}`, x.connected]));
}

beforeAll(() => {
  if (process.getuid?.() !== 0)
    throw new Error('weir lab creates network namespaces and loads BPF programs: run the tests as root');
});

afterAll(async () => {
  await lab.cleanup();
}, 60_000);

describe('examples through weir lab', () => {
  test('three-tier: each tier reachable only from the one in front of it', async () => {
    await lab.weir(['lab', 'up', '--cluster', 'examples/three-tier/cluster.yaml']);
    const before = await table('serve');
    expect(Object.values(before).every(Boolean)).toBe(true);
    await lab.weir(['lab', 'apply', '-f', 'examples/three-tier/policies.yaml']);
    const after = await table('serve');
    const pods = ['outside/client', 'shop/backend', 'shop/db', 'shop/frontend'];
    const allowed = (from: string, to: string): boolean =>
      from === to ||
      to === 'outside/client' ||
      to === 'shop/frontend' ||
      (to === 'shop/backend' && from === 'shop/frontend') ||
      (to === 'shop/db' && from === 'shop/backend');
    const expected = Object.fromEntries(pods.flatMap((f) => pods.map((t) => [`${f} -> ${t}`, allowed(f, t)])));
    expect(after).toEqual(expected);
    await lab.weir(['lab', 'down']);
  }, 60_000);

  test('two-teams: billing opens https of its API to team web, and nothing else', async () => {
    await lab.weir(['lab', 'up', '--cluster', 'examples/two-teams/cluster.yaml']);
    await lab.weir(['lab', 'apply', '-f', 'examples/two-teams/policies.yaml']);
    expect(await table('https', ['--to', 'billing/api'])).toEqual({
      'billing/api -> billing/api': true,
      'billing/worker -> billing/api': true,
      'web/store -> billing/api': true,
    });
    expect(await table('admin', ['--to', 'billing/'])).toEqual({
      'billing/api -> billing/api': true,
      'billing/api -> billing/worker': true,
      'billing/worker -> billing/api': true,
      'billing/worker -> billing/worker': true,
      'web/store -> billing/api': false,
      'web/store -> billing/worker': false,
    });
    await lab.weir(['lab', 'down']);
  }, 60_000);

  test('test-network-policy: the db accepts its frontend and project myproject, and sends to no pod', async () => {
    await lab.weir(['lab', 'up', '--cluster', 'examples/test-network-policy/cluster.yaml']);
    await lab.weir(['lab', 'apply', '-f', 'examples/test-network-policy/policy.yaml']);
    expect(await table('redis', ['--to', 'default/db'])).toEqual({
      'default/db -> default/db': true,
      'default/frontend -> default/db': true,
      'myproject/worker -> default/db': true,
      'other/stranger -> default/db': false,
    });
    expect(await table('redis', ['--from', 'default/db'])).toEqual({
      'default/db -> default/db': true,
      'default/db -> default/frontend': false,
      'default/db -> myproject/worker': false,
      'default/db -> other/stranger': false,
    });
    await lab.weir(['lab', 'down']);
  }, 60_000);

  test('default-deny and allow-all: deny every ingress in a namespace, then allow it all again', async () => {
    await lab.weir(['lab', 'up', '--cluster', 'examples/test-network-policy/cluster.yaml']);
    await lab.weir(['lab', 'apply', '-f', 'examples/default-deny/deny-ingress.yaml']);
    expect(await table('redis', ['--from', 'other/stranger', '--to', 'default/'])).toEqual({
      'other/stranger -> default/db': false,
      'other/stranger -> default/frontend': false,
    });
    await lab.weir(['lab', 'apply', '-f', 'examples/allow-all/allow-ingress.yaml']);
    expect(await table('redis', ['--from', 'other/stranger', '--to', 'default/'])).toEqual({
      'other/stranger -> default/db': true,
      'other/stranger -> default/frontend': true,
    });
    await lab.weir(['lab', 'apply', '-f', 'examples/default-deny/deny-egress.yaml']);
    expect(await table('redis', ['--from', 'default/frontend', '--to', 'myproject/'])).toEqual({
      'default/frontend -> myproject/worker': false,
    });
    await lab.weir(['lab', 'apply', '-f', 'examples/allow-all/allow-egress.yaml']);
    expect(await table('redis', ['--from', 'default/frontend', '--to', 'myproject/'])).toEqual({
      'default/frontend -> myproject/worker': true,
    });
    await lab.weir(['lab', 'down']);
  }, 60_000);
});
