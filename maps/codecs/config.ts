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
  /**
   * Allowed new connections emit a flow event (default true). Off, only denied and dropped
   * packets do: the counters (and the metrics read from them) still count every connection.
   */
  allowedFlows?: boolean;
  /**
   * A packet between two pods of the node goes straight to the receiving pod's veth, past the
   * node's IP stack and netfilter (default true). Off, it takes the node's forward path.
   */
  localDelivery?: boolean;
}

export function encodeConfig(c: DatapathConfig): Buffer {
  const b = Buffer.alloc(configLayout.size);
  const flags =
    ConfigFlag.SET |
    (c.hostAllow ? ConfigFlag.HOST_ALLOW : 0) |
    (c.allowedFlows === false ? ConfigFlag.NO_ALLOWED_FLOWS : 0) |
    (c.localDelivery === false ? ConfigFlag.NO_LOCAL_DELIVERY : 0);
  b.writeUInt32LE(flags >>> 0, configLayout.offsets.flags);
  return b;
}

export function decodeConfig(b: Buffer): DatapathConfig {
  const f = b.readUInt32LE(configLayout.offsets.flags);
  if ((f & ConfigFlag.SET) === 0) return { hostAllow: true, allowedFlows: true, localDelivery: true };
  return {
    hostAllow: (f & ConfigFlag.HOST_ALLOW) !== 0,
    allowedFlows: (f & ConfigFlag.NO_ALLOWED_FLOWS) === 0,
    localDelivery: (f & ConfigFlag.NO_LOCAL_DELIVERY) === 0,
  };
}
