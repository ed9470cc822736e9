/**
 * `weir datapath show` on a pinned datapath: endpoints with their allow
 * entries (ranges folded back), counters and connections, as an operator
 * reads them. Runs the built CLI (make build). Needs root.
 *
 * @requires root
 */
import { execFileSync } from 'node:child_process';
import { KernelFixture, TC_ACT_OK, endpoint, entry, state } from './fixture.js';
import { ipv4, tcp, TCP_SYN } from './packets.js';
import { Protocol } from '../../maps/abi.js';

let fx: KernelFixture;
beforeAll(() => {
  fx = KernelFixture.create('i', ['in/a']);
  fx.rec.applyFull(
    state(
      [
        endpoint('in/a', ['10.210.6.1'], 8001, {
          ingressIsolated: true,
          entries: [
            entry({ direction: 'ingress', remoteIdentity: 8002, protocol: 'TCP', port: 80, endPort: 80 }),
            entry({ direction: 'ingress', remoteIdentity: 0, protocol: 'UDP', port: 8000, endPort: 8100 }),
          ],
        }),
      ],
      [
        ['10.210.6.1/32', 8001],
        ['10.210.6.2/32', 8002],
      ],
    ),
  );
});
afterAll(() => fx?.close());

const weir = (...args: string[]) => execFileSync(process.execPath, ['bin/weir', ...args], { encoding: 'utf8' });

describe('weir datapath show', () => {
  it('prints endpoints, entries, counters and connections', () => {
    expect(fx.run('toPod', 'in/a', ipv4('10.210.6.2', '10.210.6.1', Protocol.TCP, tcp(41000, 80, TCP_SYN)))).toBe(
      TC_ACT_OK,
    );
    const out = weir('datapath', 'show', '--pin-root', fx.pinRoot, '--connections', '5');
    expect(out).toContain(`ifindex ${fx.ifindex.get('in/a')} identity 8001`);
    expect(out).toContain('isolated: ingress');
    expect(out).toContain('allow ingress identity=8002 TCP/80');
    expect(out).toMatch(/allow ingress any UDP\/8000-8100 \(ports covered by \d+ prefix blocks\)/);
    expect(out).toMatch(/INGRESS +FORWARDED +L3_L4 +1 /);
    expect(out).toContain('TCP    10.210.6.2:41000 -> 10.210.6.1:80 remote 8002 L3_L4 unreplied');
  });

  it('says what to do when nothing is pinned there', () => {
    expect(() =>
      execFileSync(process.execPath, ['bin/weir', 'datapath', 'show', '--pin-root', '/sys/fs/bpf/wdp-none'], {
        encoding: 'utf8',
        stdio: 'pipe',
      }),
    ).toThrow(/no weir datapath is pinned under \/sys\/fs\/bpf\/wdp-none/);
  });
});
