/** Address codec: the 16-byte network-order form the maps use, and back to RFC 5952 text. */
import { writeAddr, readAddr, parseCidr } from '../../maps/codecs/addr.js';
import { encodeIpcacheLpmKey, decodeIpcacheLpmKey } from '../../maps/codecs/ipcache.js';

const roundTrip = (ip: string): [string, string] => {
  const b = Buffer.alloc(16);
  const f = writeAddr(b, 0, ip);
  return [b.toString('hex'), readAddr(b, 0, f)];
};

describe('address codec', () => {
  it.each([
    ['10.210.0.1', '0ad20001000000000000000000000000', '10.210.0.1'],
    ['::', '00000000000000000000000000000000', '::'],
    ['::1', '00000000000000000000000000000001', '::1'],
    ['fd00:210::1', 'fd000210000000000000000000000001', 'fd00:210::1'],
    ['FD00:0210:0:0:0:0:0:0001', 'fd000210000000000000000000000001', 'fd00:210::1'],
    ['1:0:0:2:0:0:0:3', '00010000000000020000000000000003', '1:0:0:2::3'],
    ['1:2:3:4:5:6:7:8', '00010002000300040005000600070008', '1:2:3:4:5:6:7:8'],
    ['64:ff9b::192.0.2.33', '0064ff9b0000000000000000c0000221', '64:ff9b::c000:221'],
  ])('%s', (ip, hex, text) => {
    expect(roundTrip(ip)).toEqual([hex, text]);
  });

  it('rejects what is not an address, naming it', () => {
    expect(() => roundTrip('10.0.0.256')).toThrow(/"10.0.0.256" is not an IPv4 or IPv6 address/);
    expect(() => parseCidr('10.0.0.0/33')).toThrow(/prefix length must be an integer 0..32/);
  });

  it('prefix keys drop host bits, so equal prefixes are one key', () => {
    expect(decodeIpcacheLpmKey(encodeIpcacheLpmKey('10.210.7.9/24'))).toBe('10.210.7.0/24');
    expect(encodeIpcacheLpmKey('fd00:210::1/48').equals(encodeIpcacheLpmKey('fd00:210::/48'))).toBe(true);
  });
});
