/**
 * The ring-buffer addon hands a batch over as one copy (records back to back) and where each
 * record ends; splitBatch cuts it into one view per record, in order, of each record's own length.
 */
import { splitBatch } from '../../maps/ringbuf.js';
import { ringBatch } from '../ring-batch.js';

const batch = ringBatch;

describe('splitBatch', () => {
  it('gives back every record of a batch, in order, with its own bytes and length', () => {
    const records = [Buffer.from([1, 2, 3]), Buffer.alloc(112, 7), Buffer.from([9]), Buffer.alloc(112, 8)];
    const out = splitBatch(...batch(records));
    expect(out).toHaveLength(4);
    out.forEach((r, i) => expect(Buffer.compare(r, records[i]!)).toBe(0));
  });

  it('an empty batch is no records', () => {
    expect(splitBatch(Buffer.alloc(0), Buffer.alloc(0), 0)).toEqual([]);
  });

  it('reads only as many ends as the count says', () => {
    const [data, ends] = batch([Buffer.from([1]), Buffer.from([2])]);
    expect(splitBatch(data, ends, 1).map((r) => [...r])).toEqual([[1]]);
  });
});
