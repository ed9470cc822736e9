/** config: ARRAY with one struct weir_config at index 0. */
import { layout } from './layout.js';
import { ConfigFlag } from '../abi.js';

export const configLayout = layout('weir_config', [
  { name: 'flags', type: 'u32' },
  { name: '_pad', type: 'u32' },
] as const);

export interface DatapathConfig {
  /** The node's own addresses (identity host) may reach its pods regardless of policy. */
  hostAllow: boolean;
}

export function encodeConfig(c: DatapathConfig): Buffer {
  const b = Buffer.alloc(configLayout.size);
  b.writeUInt32LE((ConfigFlag.SET | (c.hostAllow ? ConfigFlag.HOST_ALLOW : 0)) >>> 0, configLayout.offsets.flags);
  return b;
}

export function decodeConfig(b: Buffer): DatapathConfig {
  const f = b.readUInt32LE(configLayout.offsets.flags);
  return { hostAllow: (f & ConfigFlag.SET) === 0 ? true : (f & ConfigFlag.HOST_ALLOW) !== 0 };
}
