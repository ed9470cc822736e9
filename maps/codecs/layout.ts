/**
 * C struct layout for the codecs: field offsets computed with the C rules
 * (natural alignment, tail padding), so each codec names its fields once and
 * test/unit/abi.test.ts compares the result with the compiler's offsetof/sizeof.
 */

export type FieldType = 'u8' | 'u16' | 'u32' | 'u64' | { bytes: number };

export interface FieldSpec {
  name: string;
  type: FieldType;
}

export interface StructLayout<N extends string = string> {
  /** C struct name in bpf/weir_abi.h. */
  cName: string;
  size: number;
  offsets: Record<N, number>;
}

function sizeAlign(t: FieldType): [number, number] {
  if (typeof t === 'object') return [t.bytes, 1];
  const n = { u8: 1, u16: 2, u32: 4, u64: 8 }[t];
  return [n, n];
}

export function layout<N extends string>(
  cName: string,
  fields: ReadonlyArray<{ name: N; type: FieldType }>,
): StructLayout<N> {
  let off = 0;
  let maxAlign = 1;
  const offsets = {} as Record<N, number>;
  for (const f of fields) {
    const [size, align] = sizeAlign(f.type);
    off = Math.ceil(off / align) * align;
    offsets[f.name] = off;
    off += size;
    maxAlign = Math.max(maxAlign, align);
  }
  return { cName, size: Math.ceil(off / maxAlign) * maxAlign, offsets };
}
