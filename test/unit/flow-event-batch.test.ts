/**
 * A ring-buffer batch decoded in place (decodeFlowEvents, what Datapath.onFlowEvents reads) gives
 * the events the per-record decoder gives each record on its own, for records of every kind: both
 * families, Service flows, drops with reasons, runs of one tick, any byte anywhere; addresses match an independent
 * formatting (WHATWG URL for IPv6), also past the bound of the kept IPv4 strings. A record shorter
 * than the struct is refused as before.
 */
import { decodeFlowEvent, decodeFlowEvents, flowEventLayout, FLOW_EVENT_SIZE } from '../../maps/codecs/flow-event.js';
import { splitBatch } from '../../maps/ringbuf.js';
import { isDeepStrictEqual } from 'node:util';
import { mulberry32 } from '../prng.js';
import { ringBatch } from '../ring-batch.js';

const batch = ringBatch;

const o = flowEventLayout.offsets;

function randomRecord(r: () => number, i: number): Buffer {
  const b = Buffer.alloc(FLOW_EVENT_SIZE);
  for (let k = 0; k < b.length; k++) b[k] = Math.floor(r() * 256);
  b[o.family] = r() < 0.5 ? 4 : 6;
  b[o.flags] = r() < 0.3 ? b[o.flags]! | (1 << 3) : b[o.flags]! & ~(1 << 3); // Service flows
  b[o.verdict] = Math.floor(r() * 3);
  b[o.drop_reason] = b[o.verdict] === 1 ? 1 + Math.floor(r() * 30) : 0;
  b.writeUInt32BE(0x0ae60000 + (i % 70000), o.src_addr); // many IPv4 sources: past the kept strings' bound
  // half the records in runs of 64 that share a tick, as a busy node's do
  if (Math.floor(i / 1000) % 2 === 0) b.writeBigUInt64LE(4_295_000_000n + BigInt(Math.floor(i / 64)), o.ts_jiffies);
  return b;
}

function ipv6(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

const addrOf = (rec: Buffer, off: number): string =>
  rec[o.family] === 6 ? ipv6(rec.subarray(off, off + 16)) : [...rec.subarray(off, off + 4)].join('.');

describe('decodeFlowEvents', () => {
  const r = mulberry32(15);
  const records = Array.from({ length: 80000 }, (_, i) => randomRecord(r, i));
  const toMonoNs = (j: bigint) => j * 4_000_000n + 17n;

  it.each([
    ['without a clock', undefined],
    ['with the tick clock', toMonoNs],
  ])('gives what the per-record decoder gives, %s', (_, clock) => {
    const [data, ends, count] = batch(records);
    const inPlace = decodeFlowEvents(data, ends, count, clock);
    const perRecord = splitBatch(data, ends, count).map((b) => decodeFlowEvent(Buffer.from(b), clock));
    expect(inPlace).toHaveLength(perRecord.length);
    const bad = inPlace.findIndex((e, i) => !isDeepStrictEqual(e, perRecord[i]));
    expect(bad < 0 ? undefined : { record: bad, inPlace: inPlace[bad], perRecord: perRecord[bad] }).toBeUndefined();
    let services = 0;
    inPlace.forEach((ev, i) => {
      const rec = records[i]!;
      expect(ev.srcAddr).toBe(addrOf(rec, o.src_addr));
      expect(ev.dstAddr).toBe(addrOf(rec, o.dst_addr));
      if (ev.service) {
        services++;
        expect(ev.service.addr).toBe(addrOf(rec, o.orig_addr));
      }
    });
    expect(services).toBeGreaterThan(1000);
  });

  it('refuses a record shorter than the struct, naming the sizes', () => {
    const [data, ends, count] = batch([records[0]!, records[1]!.subarray(0, 40)]);
    expect(() => decodeFlowEvents(data, ends, count)).toThrow(
      `flow event record is 40 bytes, expected ${FLOW_EVENT_SIZE}`,
    );
  });
});
