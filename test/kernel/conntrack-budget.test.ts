/**
 * One pod cannot flush everyone's connections: a pod opening new connections as fast as it can
 * (300,000 UDP datagrams to new ports, more than the conntrack table holds) is held to its
 * budget (WEIR_CT_BUDGET_*: the rest dropped as CT_BUDGET, counted), so another pod's idle
 * allowed connection stays established and the other pod still opens new ones. BPF_PROG_TEST_RUN
 * in the real kernel; needs root.
 *
 * @requires root
 */
import { KernelFixture, TC_ACT_OK, endpoint, entry, state } from './fixture.js';
import { ipv4, tcp, udp, TCP_SYN, TCP_ACK } from './packets.js';
import { Direction, DropReason, Match, Protocol, Verdict } from '../../maps/abi.js';
import { testRun } from '../../maps/test-run.js';
import { formatDatapath, inspectDatapath } from '../../agent/datapath/inspect.js';

const FLOOD = 300_000; // more than WEIR_CT_MAX (262,144)
const BURST = 20_000;
const RATE = 5_000;
const A = 'ct/flooder';
const B = 'ct/victim';

let fx: KernelFixture;
beforeAll(() => {
  fx = KernelFixture.create('b', [A, B]);
  const st = fx.rec.applyFull(
    state(
      [
        endpoint(A, ['10.212.0.1'], 5001),
        // B: isolated both ways, may only talk to 10.212.9.9:443 (so its replies need conntrack)
        endpoint(B, ['10.212.0.2'], 5002, {
          ingressIsolated: true,
          egressIsolated: true,
          entries: [entry({ direction: 'egress', remoteIdentity: 0, protocol: 'TCP', port: 443, endPort: 443 })],
        }),
      ],
      [
        ['10.212.0.1/32', 5001],
        ['10.212.0.2/32', 5002],
      ],
    ),
  );
  expect(st.errors).toEqual([]);
});
afterAll(() => fx?.close());

describe('conntrack budget per endpoint', () => {
  it(`a flood of ${FLOOD} new connections from one pod leaves another pod's idle connection established`, async () => {
    // B's connection: SYN out, SYN-ACK back (a reply: passes only through conntrack)
    expect(fx.run('fromPod', B, ipv4('10.212.0.2', '10.212.9.9', Protocol.TCP, tcp(40000, 443, TCP_SYN)))).toBe(
      TC_ACT_OK,
    );
    const reply = ipv4('10.212.9.9', '10.212.0.2', Protocol.TCP, tcp(443, 40000, TCP_SYN | TCP_ACK));
    expect(fx.run('toPod', B, reply)).toBe(TC_ACT_OK);

    const fd = fx.dp.program('fromPod');
    const ifindex = fx.ifindex.get(A);
    const dropsBefore = fx.counter(Direction.EGRESS, Verdict.DROPPED, DropReason.CT_BUDGET);
    const t0 = performance.now();
    let passed = 0;
    for (let i = 0; i < FLOOD; i++) {
      const dst = `10.213.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}`;
      const pkt = ipv4('10.212.0.1', dst, Protocol.UDP, udp(1024 + (i & 0xff), 1 + (i % 65000)));
      if (testRun(fd, pkt, { ifindex }).retval === TC_ACT_OK) passed++;
      if (i % 20_000 === 0) await fx.takeEvents(); // keep the ring buffer drained
    }
    const seconds = (performance.now() - t0) / 1000;
    const refused = fx.counter(Direction.EGRESS, Verdict.DROPPED, DropReason.CT_BUDGET) - dropsBefore;
    process.stdout.write(
      `conntrack budget: ${FLOOD} new connections in ${seconds.toFixed(2)} s from one pod: ${passed} admitted, ${refused} refused (CT_BUDGET)\n`,
    );
    // held to burst + rate x time (plus a tick of the coarse clock)
    expect(passed).toBeGreaterThanOrEqual(BURST);
    expect(passed).toBeLessThanOrEqual(BURST + Math.ceil(RATE * (seconds + 0.1)) + 1);
    expect(Number(refused)).toBe(FLOOD - passed);

    // `weir datapath show` reports the fill and the refusals
    const view = inspectDatapath(fx.pinRoot);
    expect(view.conntrack.refusedOverBudget).toBe(refused);
    expect(view.conntrack.ipv4.entries).toBeGreaterThanOrEqual(passed);
    expect(view.conntrack.ipv4.entries).toBeLessThan(view.conntrack.ipv4.capacity);
    expect(formatDatapath(view)).toMatch(
      new RegExp(`conntrack: ipv4 \\d+/262144 .*refused: ${refused} over an endpoint's budget`),
    );

    // the victim's idle connection is still there: its reply passes as ESTABLISHED
    const est = fx.counter(Direction.INGRESS, Verdict.FORWARDED, Match.ESTABLISHED);
    expect(fx.run('toPod', B, ipv4('10.212.9.9', '10.212.0.2', Protocol.TCP, tcp(443, 40000, TCP_ACK)))).toBe(
      TC_ACT_OK,
    );
    expect(fx.counter(Direction.INGRESS, Verdict.FORWARDED, Match.ESTABLISHED) - est).toBe(1n);
    // and the victim still opens new connections: its budget is its own
    expect(fx.run('fromPod', B, ipv4('10.212.0.2', '10.212.9.9', Protocol.TCP, tcp(40001, 443, TCP_SYN)))).toBe(
      TC_ACT_OK,
    );
    await fx.takeEvents();
  }, 300_000);
});
