/** fragments: LRU HASH weir_frag_key -> weir_frag_value (first fragment's ports; written only by the datapath). */
import { layout } from './layout.js';

export const fragKeyLayout = layout('weir_frag_key', [
  { name: 'src_addr', type: { bytes: 16 } },
  { name: 'dst_addr', type: { bytes: 16 } },
  { name: 'id', type: 'u32' },
  { name: 'protocol', type: 'u8' },
  { name: 'family', type: 'u8' },
  { name: '_pad', type: 'u16' },
] as const);
export const fragValueLayout = layout('weir_frag_value', [
  { name: 'src_port', type: 'u16' },
  { name: 'dst_port', type: 'u16' },
  { name: '_pad', type: 'u32' },
] as const);
