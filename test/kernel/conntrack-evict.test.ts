/**
 * The conntrack eviction count: BPF cannot see an LRU eviction, so the datapath counts what one
 * looks like — a TCP packet without SYN, of a known endpoint, that finds no conntrack entry in
 * either direction (weir_ct_miss; `weir datapath show` and
 * weir_conntrack_midstream_misses_total). A table sized small at load (as `--map-max` does) is
 * filled with new connections until a known, established connection is evicted; its next
 * packet moves the count by exactly one. BPF_PROG_TEST_RUN in the real kernel; needs root.
 *
 * @requires root
 */
import { KernelFixture, TC_ACT_OK, endpoint, entry, state } from './fixture.js';
import { ipv4, tcp, TCP_SYN, TCP_ACK } from './packets.js';
import { Direction, Match, Protocol, Verdict } from '../../maps/abi.js';
import { decodeCt4Key } from '../../maps/codecs/conntrack.js';
import { testRun } from '../../maps/test-run.js';
import { formatDatapath, inspectDatapath } from '../../agent/datapath/inspect.js';

const CT4_SIZE = 64;
const POD = '10.214.0.1';
const PEER = '10.214.0.2';
const A = 'ev/server';

let fx: KernelFixture;
beforeAll(() => {
  fx = KernelFixture.create('e', [A], { weir_ct4: CT4_SIZE });
  const st = fx.rec.resyncTo(
    state(
      [
        endpoint(A, [POD], 6001, {
          ingressIsolated: true,
          entries: [entry({ direction: 'ingress', remoteIdentity: 6002, protocol: 'TCP', port: 80, endPort: 80 })],
        }),
      ],
      [
        [`${POD}/32`, 6001],
        [`${PEER}/32`, 6002],
      ],
    ),
  );
  expect(st.errors).toEqual([]);
});
afterAll(() => fx?.close());

const misses = () => fx.dp.conntrackMisses();
const hasConnection = (sport: number): boolean =>
  [...fx.dp.map('conntrack4').keys()].some((k) => decodeCt4Key(k).srcPort === sport);

describe('conntrack eviction count', () => {
  it('an evicted connection is counted once, on its next packet', async () => {
    const ack = ipv4(PEER, POD, Protocol.TCP, tcp(40000, 80, TCP_ACK));
    expect(fx.run('toPod', A, ipv4(PEER, POD, Protocol.TCP, tcp(40000, 80, TCP_SYN)))).toBe(TC_ACT_OK);
    const est = fx.counter(Direction.INGRESS, Verdict.FORWARDED, Match.ESTABLISHED);
    expect(fx.run('toPod', A, ack)).toBe(TC_ACT_OK);
    expect(fx.counter(Direction.INGRESS, Verdict.FORWARDED, Match.ESTABLISHED) - est).toBe(1n);
    // a live connection's packets and new connections' SYNs are not misses
    expect(misses()).toEqual({ ingress: 0n, egress: 0n });
    expect(hasConnection(40000)).toBe(true);

    // other connections of the same pair, each used once more (an ACK: the LRU sees them
    // referenced, as the known one was), fill the small table until the known one is evicted
    // (per-CPU LRU lists: the flood yields now and then, so it runs on every CPU the entry may be on)
    const fd = fx.dp.program('toPod');
    const ifindex = fx.ifindex.get(A);
    let flood = 0;
    while (hasConnection(40000) && flood < 20_000) {
      for (let i = 0; i < 50; i++, flood++)
        for (const flags of [TCP_SYN, TCP_ACK])
          expect(testRun(fd, ipv4(PEER, POD, Protocol.TCP, tcp(1024 + flood, 80, flags)), { ifindex }).retval).toBe(
            TC_ACT_OK,
          );
      await fx.takeEvents();
    }
    expect(hasConnection(40000)).toBe(false);
    expect(misses()).toEqual({ ingress: 0n, egress: 0n }); // SYNs are never misses

    // the evicted connection's next packet: one miss, counted before the policy decides (it allows it)
    expect(fx.run('toPod', A, ack)).toBe(TC_ACT_OK);
    expect(misses()).toEqual({ ingress: 1n, egress: 0n });
    // the pod's answer finds no entry either (its own direction and the reverse): one egress miss
    expect(fx.run('fromPod', A, ipv4(POD, PEER, Protocol.TCP, tcp(80, 40000, TCP_ACK)))).toBe(TC_ACT_OK);
    expect(misses()).toEqual({ ingress: 1n, egress: 1n });

    // `weir datapath show` reports it next to the fill of the small table
    const view = inspectDatapath(fx.pinRoot);
    expect(view.conntrack.midstreamMisses).toEqual({ ingress: 1n, egress: 1n });
    expect(view.conntrack.ipv4.capacity).toBe(CT4_SIZE);
    expect(formatDatapath(view)).toMatch(
      new RegExp(
        `conntrack: ipv4 \\d+/${CT4_SIZE} .*mid-stream misses \\(evicted, most likely\\): 2 \\(ingress 1, egress 1\\)`,
      ),
    );
    process.stdout.write(
      `conntrack eviction: a ${CT4_SIZE}-entry table evicted the known connection after ${flood} new connections; its next packet counted 1 miss\n`,
    );
    await fx.takeEvents();
  }, 120_000);
});
