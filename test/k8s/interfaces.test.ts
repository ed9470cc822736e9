/**
 * Pod interface discovery on real veths (needs root): a routed veth (ptp / Calico style), a veth on a
 * bridge (bridge CNI), and addresses that are not local pods.
 *
 * @requires root
 */
import { execFileSync } from 'node:child_process';
import { findPodInterface } from '../../agent/node/interfaces.js';

const sh = (cmd: string): void => {
  execFileSync('sh', ['-c', cmd], { stdio: 'pipe' });
};
const quiet = (cmd: string): void => {
  try {
    sh(cmd);
  } catch {
    /* already gone */
  }
};
const ifindex = (dev: string): number =>
  Number(
    execFileSync('cat', [`/sys/class/net/${dev}/ifindex`])
      .toString()
      .trim(),
  );

function cleanup(): void {
  quiet('ip netns del wk8-if-r');
  quiet('ip netns del wk8-if-b');
  quiet('ip link del wk8r0');
  quiet('ip link del wk8b0');
  quiet('ip link del wk8br0');
}

describe('pod interface discovery (root)', () => {
  beforeAll(() => {
    cleanup();
    // Routed veth: host route per pod IP through the veth, no address on the host side.
    sh('ip netns add wk8-if-r');
    sh('ip link add wk8r0 type veth peer name eth0 netns wk8-if-r');
    sh('ip link set wk8r0 up');
    sh('ip -n wk8-if-r addr add 10.240.10.2/32 dev eth0 && ip -n wk8-if-r addr add fd00:240::10:2/128 dev eth0 nodad');
    sh('ip -n wk8-if-r link set eth0 up && ip -n wk8-if-r link set lo up');
    sh('ip route add 10.240.10.2/32 dev wk8r0 && ip -6 route add fd00:240::10:2/128 dev wk8r0');
    // Bridge: the pod's veth is a bridge port; the host reaches the pod through the bridge.
    sh('ip link add wk8br0 type bridge && ip addr add 10.240.11.1/24 dev wk8br0 && ip link set wk8br0 up');
    sh('ip netns add wk8-if-b');
    sh('ip link add wk8b0 type veth peer name eth0 netns wk8-if-b');
    sh('ip link set wk8b0 master wk8br0 && ip link set wk8b0 up');
    sh('ip -n wk8-if-b addr add 10.240.11.2/24 dev eth0 && ip -n wk8-if-b link set eth0 up');
  });
  afterAll(cleanup);

  it('finds a routed veth by the route to the pod IP (IPv4 and IPv6)', async () => {
    await expect(findPodInterface('10.240.10.2')).resolves.toEqual({
      ifindex: ifindex('wk8r0'),
      name: 'wk8r0',
      via: 'route',
    });
    await expect(findPodInterface('fd00:240::10:2')).resolves.toEqual({
      ifindex: ifindex('wk8r0'),
      name: 'wk8r0',
      via: 'route',
    });
  });

  it('finds the bridge port of a pod behind a bridge', async () => {
    await expect(findPodInterface('10.240.11.2')).resolves.toEqual({
      ifindex: ifindex('wk8b0'),
      name: 'wk8b0',
      via: 'bridge',
    });
  });

  it('finds nothing for addresses that are not local pods behind a veth', async () => {
    // Routed through the node's uplink (or nowhere): only looked up, no packet is sent.
    await expect(findPodInterface('192.0.2.1')).resolves.toBeUndefined();
    await expect(findPodInterface('10.240.11.1')).resolves.toBeUndefined(); // the node's own address
    await expect(findPodInterface('10.240.11.99')).resolves.toBeUndefined(); // nobody answers on the bridge
    await expect(findPodInterface('nonsense')).rejects.toThrow(/not an IP address/);
  });
});
