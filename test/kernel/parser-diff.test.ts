/**
 * weir's packet parser against an independent dissector (scapy), packet by packet, in the
 * real kernel (BPF_PROG_TEST_RUN). `make test` runs 5,000 packets; `make test-parser-full`
 * runs 100,000 (WEIR_PARSER_PACKETS). Needs root and python3-scapy.
 *
 * @requires root
 */
import { runParserDiff } from './parser-diff.js';

const COUNT = Number(process.env.WEIR_PARSER_PACKETS ?? 5000);
const SEED = Number(process.env.WEIR_PARSER_SEED ?? 11);

describe('packet parser vs scapy', () => {
  it(`${COUNT} generated packets: same 5-tuple, fragment state and drop reason`, () => {
    const r = runParserDiff(COUNT, SEED);
    const pct = (n: number) => `${((100 * n) / r.packets).toFixed(2)}%`;
    process.stdout.write(
      `parser diff: ${r.packets} packets (seed ${SEED}), ${r.mismatches.length} mismatches; ` +
        `refused ${r.refused} (${pct(r.refused)}) of which ${r.refusedForLimit} (${pct(r.refusedForLimit)}) only for the walk limit; ` +
        `${r.whole} whole per the reference, ${r.withAh} IPv6 with AH; by reason ${JSON.stringify(r.byReason)}; ` +
        `generate ${r.seconds.generate}s, kernel ${r.seconds.kernel}s\n`,
    );
    for (const m of r.mismatches.slice(0, 10)) process.stdout.write(`  ${m.hex}\n    ${m.diffs.join('\n    ')}\n`);
    expect(r.packets).toBe(COUNT);
    expect(r.mismatches.length).toBe(0);
    // the mix exercised what it claims to
    expect(r.whole).toBeGreaterThan(COUNT / 4);
    expect(r.withAh).toBeGreaterThan(COUNT / 50);
  }, 3_600_000);
});
