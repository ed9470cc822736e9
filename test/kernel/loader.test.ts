/**
 * The libbpf layer's errors tell the user what happened and what to do: the
 * verifier log inside a load error, a missing object, maps pinned by an
 * incompatible build (replaced when their layout differs, refused when only
 * their size does). Builds two tiny BPF objects with clang. Needs root.
 *
 * @requires root
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadObject } from '../../maps/object.js';
import { Datapath } from '../../agent/datapath/datapath.js';
import { MapName } from '../../maps/abi.js';
import { encodeIpcacheKey, encodeIpcacheLpmKey, encodeIpcacheValue } from '../../maps/codecs/ipcache.js';
import { MapType, openPinnedMap } from '../../maps/bpf-map.js';

const dir = mkdtempSync(join(tmpdir(), 'wdp-loader-'));
const PIN_ROOT = `/sys/fs/bpf/wdp-loader-${process.pid}`;
const INCLUDE = `/usr/include/${execFileSync('uname', ['-m'], { encoding: 'utf8' }).trim()}-linux-gnu`;

function compile(name: string, source: string): string {
  const src = join(dir, `${name}.c`);
  const obj = join(dir, `${name}.o`);
  writeFileSync(src, source);
  execFileSync('clang', ['-O2', '-g', '-target', 'bpf', `-I${INCLUDE}`, '-c', src, '-o', obj]);
  return obj;
}

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(PIN_ROOT, { recursive: true, force: true });
});

describe('loading BPF objects', () => {
  it('a program the verifier rejects: the error carries the verifier log', () => {
    const obj = compile(
      'unchecked',
      `
      #include <linux/bpf.h>
      #include <bpf/bpf_helpers.h>
      SEC("tc") int unchecked(struct __sk_buff *skb) {
        unsigned char *p = (void *)(long)skb->data;
        return p[20]; /* no bounds check against data_end */
      }
      char LICENSE[] SEC("license") = "GPL";`,
    );
    let err: Error | undefined;
    try {
      loadObject(obj).close();
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).toMatch(/loading BPF object .*unchecked\.o failed: Permission denied/);
    expect(err?.message).toContain('--- libbpf/verifier log ---');
    expect(err?.message).toMatch(/invalid access to packet/);
  });

  it('a missing object says to build it', () => {
    expect(() => loadObject(join(dir, 'nothing.o'))).toThrow(/not found: run "make build"/);
  });

  it('a pinned map of another layout (an older build) is replaced by one of this build, empty', () => {
    const obj = compile(
      'oldct',
      `
      #include <linux/bpf.h>
      #include <bpf/bpf_helpers.h>
      struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, __u32); __type(value, __u32);
               __uint(pinning, LIBBPF_PIN_BY_NAME); } weir_ct SEC(".maps");
      SEC("tc") int uses(struct __sk_buff *skb) { __u32 k = 0; return bpf_map_lookup_elem(&weir_ct, &k) ? 1 : 0; }
      char LICENSE[] SEC("license") = "GPL";`,
    );
    const old = loadObject(obj, { pinRoot: PIN_ROOT, pinPrograms: false });
    old.map('weir_ct').update(Buffer.alloc(4), Buffer.alloc(4, 1));
    const dp = Datapath.open({ pinRoot: PIN_ROOT });
    try {
      expect(dp.replacedMaps).toEqual([
        {
          name: MapName.conntrack,
          was: { type: MapType.HASH, keySize: 4, valueSize: 4, flags: 0 },
          now: { type: MapType.LRU_HASH, keySize: 44, valueSize: 32, flags: 2 /* BPF_F_NO_COMMON_LRU */ },
          carried: 0,
        },
      ]);
      expect([...dp.map('conntrack').keys()]).toEqual([]);
      // the older program still holds its own map, untouched
      expect(old.map('weir_ct').lookup(Buffer.alloc(4))).toEqual(Buffer.alloc(4, 1));
    } finally {
      dp.close();
      old.close();
    }
  });

  it('a pinned map of the same layout but another size: the error says which directory to remove', () => {
    const root = `${PIN_ROOT}-size`;
    Datapath.open({ pinRoot: root, mapMax: { weir_frag: 16 } }).close();
    // and an older build's weir_ct there too, which the failed load must not lose
    rmSync(join(root, MapName.conntrack));
    const old = loadObject(join(dir, 'oldct.o'), { pinRoot: root, pinPrograms: false });
    old.map('weir_ct').update(Buffer.alloc(4), Buffer.alloc(4, 1));
    old.close();
    try {
      expect(() => Datapath.open({ pinRoot: root })).toThrow(/remove that directory to start fresh/);
      // the failed load pinned back the map it had unpinned to replace
      const back = openPinnedMap(join(root, MapName.conntrack));
      expect(back.info.valueSize).toBe(4);
      expect(back.lookup(Buffer.alloc(4))).toEqual(Buffer.alloc(4, 1));
      back.close();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('counting a map', () => {
  it('count() equals the entries read out, over several batches of a hash map and key by key for an LPM trie', () => {
    const o = loadObject(join(process.cwd(), 'build/bpf/weir.o'));
    try {
      const exact = o.maps.get(MapName.ipcache)!;
      const lpm = o.maps.get(MapName.ipcacheLpm)!;
      const entries: Array<[Buffer, Buffer]> = [];
      for (let i = 0; i < 10_000; i++)
        entries.push([encodeIpcacheKey(`10.64.${i >> 8}.${i & 255}`), encodeIpcacheValue(256 + i)]);
      expect(exact.count()).toBe(0);
      exact.updateBatch(entries);
      for (const [k] of entries.slice(0, 1000)) exact.delete(k);
      expect(exact.count()).toBe(9_000);
      expect([...exact.entries()].length).toBe(9_000);
      for (const cidr of ['11.0.0.0/8', '11.1.0.0/16', '11.1.1.0/24'])
        lpm.update(encodeIpcacheLpmKey(cidr), encodeIpcacheValue(300));
      expect(lpm.count()).toBe(3);
      expect([...lpm.entries()].length).toBe(3);
    } finally {
      o.close();
    }
  });
});
