/** A batch as the ring-buffer addon hands it over: the records back to back, and where each ends (u32 LE). */
export function ringBatch(records: Buffer[]): [Buffer, Buffer, number] {
  const ends = Buffer.alloc(records.length * 4);
  let at = 0;
  records.forEach((r, i) => {
    at += r.length;
    ends.writeUInt32LE(at, i * 4);
  });
  return [Buffer.concat(records), ends, records.length];
}
