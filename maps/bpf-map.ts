/** A BPF map by fd: single and batch operations, iteration, per-CPU values. */
import { fn, check, errno, strerror, LibbpfError } from './libbpf.js';
import type { KernelMap } from './kernel-map.js';

const BPF_ANY = 0;
const BPF_NOEXIST = 1;
const ENOENT = 2;
const E2BIG = 7;
const ENOSPC = 28;
const EINVAL = 22;
const ENOTSUPP = 524;
const EOPNOTSUPP = 95;
const ENOMEM = 12;

/** enum bpf_map_type values the layer needs to recognise. */
export const MapType = {
  HASH: 1,
  ARRAY: 2,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  LPM_TRIE: 11,
  RINGBUF: 27,
} as const;

export interface MapInfo {
  type: number;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
}

export function mapInfo(fd: number): MapInfo {
  const info = Buffer.alloc(96);
  const len = [info.length];
  check(fn.obj_get_info_by_fd(fd, info, len) as number, `reading map info of fd ${fd}`);
  const nameEnd = info.indexOf(0, 24);
  return {
    type: info.readUInt32LE(0),
    id: info.readUInt32LE(4),
    keySize: info.readUInt32LE(8),
    valueSize: info.readUInt32LE(12),
    maxEntries: info.readUInt32LE(16),
    flags: info.readUInt32LE(20),
    name: info.subarray(24, nameEnd > 24 && nameEnd < 40 ? nameEnd : 40).toString('utf8'),
  };
}

let ncpus = 0;
export function possibleCpus(): number {
  if (!ncpus) ncpus = check(fn.num_possible_cpus() as number, 'counting possible CPUs');
  return ncpus;
}

/** Thrown when a map has no room; the map keeps what it had. */
export class MapFullError extends Error {
  constructor(
    readonly mapName: string,
    readonly maxEntries: number,
  ) {
    super(
      `BPF map ${mapName} is full (${maxEntries} entries): nothing was widened; raise its size in bpf/weir_abi.h or remove entries`,
    );
    this.name = 'MapFullError';
  }
}

export class BpfMap implements KernelMap {
  readonly info: MapInfo;
  /** Bytes of one value as user space sees it (per-CPU maps: one slot per possible CPU). */
  readonly valueBytes: number;
  readonly perCpu: boolean;

  constructor(
    readonly fd: number,
    readonly name = '',
  ) {
    this.info = mapInfo(fd);
    this.perCpu = ([MapType.PERCPU_ARRAY, MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH] as number[]).includes(
      this.info.type,
    );
    this.valueBytes = this.perCpu ? Math.ceil(this.info.valueSize / 8) * 8 * possibleCpus() : this.info.valueSize;
    if (!name) this.name = this.info.name;
  }

  get maxEntries(): number {
    return this.info.maxEntries;
  }

  private checkKey(key: Buffer): void {
    if (key.length !== this.info.keySize) {
      throw new Error(
        `map ${this.name}: key is ${key.length} bytes, the map wants ${this.info.keySize} (codec and object out of sync: rebuild)`,
      );
    }
  }

  private fail(ret: number, op: string): never {
    const e = -ret;
    if (e === E2BIG || e === ENOSPC || (e === ENOMEM && this.info.type !== MapType.LRU_HASH)) {
      throw new MapFullError(this.name, this.info.maxEntries);
    }
    throw new LibbpfError(`map ${this.name}: ${op} failed: ${strerror(e)} (errno ${e})`, e);
  }

  lookup(key: Buffer): Buffer | undefined {
    this.checkKey(key);
    const out = Buffer.alloc(this.valueBytes);
    const r = fn.lookup_elem(this.fd, key, out) as number;
    if (r === -ENOENT) return undefined;
    if (r < 0) this.fail(r, 'lookup');
    return out;
  }

  update(key: Buffer, value: Buffer, flags: number = BPF_ANY): void {
    this.checkKey(key);
    if (value.length !== this.valueBytes) {
      throw new Error(`map ${this.name}: value is ${value.length} bytes, the map wants ${this.valueBytes}`);
    }
    const r = fn.update_elem(this.fd, key, value, flags) as number;
    if (r < 0) this.fail(r, 'update');
  }

  insert(key: Buffer, value: Buffer): void {
    this.update(key, value, BPF_NOEXIST);
  }

  /** Returns false when the key was not there. */
  delete(key: Buffer): boolean {
    this.checkKey(key);
    const r = fn.delete_elem(this.fd, key) as number;
    if (r === -ENOENT) return false;
    if (r < 0) this.fail(r, 'delete');
    return true;
  }

  *keys(): Generator<Buffer> {
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.info.keySize);
      const r = fn.get_next_key(this.fd, prev, next) as number;
      if (r === -ENOENT) return;
      if (r < 0) this.fail(r, 'iterate');
      yield next;
      prev = next;
    }
  }

  /**
   * Every (key, value) pair; entries deleted meanwhile are skipped. Hash maps
   * are read in batches (one syscall per `chunk` entries), others key by key.
   */
  *entries(chunk = 4096): Generator<[Buffer, Buffer]> {
    if (this.info.type === MapType.HASH || this.info.type === MapType.LRU_HASH) {
      const batched = this.lookupBatches(chunk);
      if (batched) {
        yield* batched;
        return;
      }
    }
    for (const k of this.keys()) {
      const v = this.lookup(k);
      if (v) yield [k, v];
    }
  }

  /**
   * How many entries the map holds: hash maps counted from batch reads into reused buffers (no
   * object per entry: a 100,000-entry ipcache is counted in a few syscalls), others key by key.
   */
  count(chunk = 4096): number {
    if (this.info.type === MapType.HASH || this.info.type === MapType.LRU_HASH) {
      let n = 0;
      if (this.eachBatch(chunk, (_k, _v, c) => (n += c))) return n;
    }
    let n = 0;
    for (const _ of this.keys()) n++;
    return n;
  }

  /** Undefined when the kernel cannot batch this map. */
  private lookupBatches(chunk: number): Array<[Buffer, Buffer]> | undefined {
    const out: Array<[Buffer, Buffer]> = [];
    const ks = this.info.keySize;
    const vs = this.valueBytes;
    const ok = this.eachBatch(chunk, (keys, values, count) => {
      for (let i = 0; i < count; i++) {
        out.push([
          Buffer.from(keys.subarray(i * ks, (i + 1) * ks)),
          Buffer.from(values.subarray(i * vs, (i + 1) * vs)),
        ]);
      }
    });
    return ok ? out : undefined;
  }

  /**
   * Reads the whole map in batches, handing each batch's buffers (valid until the next call) and
   * entry count to `onBatch`. False when the kernel cannot batch this map.
   */
  private eachBatch(chunk: number, onBatch: (keys: Buffer, values: Buffer, count: number) => void): boolean {
    const ks = this.info.keySize;
    const vs = this.valueBytes;
    const token = [Buffer.alloc(Math.max(8, ks)), Buffer.alloc(Math.max(8, ks))];
    let first = true;
    let size = chunk;
    let keys = Buffer.alloc(ks * size);
    let values = Buffer.alloc(vs * size);
    for (;;) {
      if (keys.length < ks * size) {
        keys = Buffer.alloc(ks * size);
        values = Buffer.alloc(vs * size);
      }
      const count = [size];
      const r = fn.lookup_batch(this.fd, first ? null : token[0], token[1], keys, values, count, {
        sz: 24,
        elem_flags: 0,
        flags: 0,
      }) as number;
      if (r < 0 && -r === ENOSPC && count[0] === 0) {
        size *= 2; // one hash bucket holds more than `size` entries
        continue;
      }
      if (r < 0 && -r !== ENOENT) {
        if (first && (-r === EINVAL || -r === ENOTSUPP || -r === EOPNOTSUPP)) return false;
        this.fail(r, 'batch lookup');
      }
      onBatch(keys, values, count[0]!);
      if (r < 0) return true; // ENOENT: that was the last batch
      token[1].copy(token[0]);
      first = false;
    }
  }

  /** Writes many entries in one syscall where the map supports it, else one by one. */
  updateBatch(entries: Array<[Buffer, Buffer]>): void {
    if (entries.length === 0) return;
    for (const [k, v] of entries) {
      this.checkKey(k);
      if (v.length !== this.valueBytes)
        throw new Error(`map ${this.name}: value is ${v.length} bytes, the map wants ${this.valueBytes}`);
    }
    if (this.info.type !== MapType.LPM_TRIE) {
      const keys = Buffer.concat(entries.map((e) => e[0]));
      const values = Buffer.concat(entries.map((e) => e[1]));
      const count = [entries.length];
      const r = fn.update_batch(this.fd, keys, values, count, { sz: 24, elem_flags: 0, flags: 0 }) as number;
      if (r === 0) return;
      if (-r !== EINVAL && -r !== ENOTSUPP && -r !== EOPNOTSUPP)
        this.fail(r, `batch update (${count[0]} of ${entries.length} written)`);
    }
    for (const [k, v] of entries) this.update(k, v);
  }

  /** Deletes many keys; missing keys are ignored. Returns how many were deleted. */
  deleteBatch(keys: Buffer[]): number {
    let n = 0;
    for (const k of keys) if (this.delete(k)) n++;
    return n;
  }

  close(): void {
    fn.close_fd(this.fd);
  }
}

/** Creates an unpinned map (tests: a map of another layout, as an older build pinned it). */
export function createMap(
  type: number,
  name: string,
  keySize: number,
  valueSize: number,
  maxEntries: number,
  flags = 0,
): BpfMap {
  let opts: Buffer | null = null;
  if (flags) {
    // struct bpf_map_create_opts (libbpf 1.x): size_t sz, then map_flags at byte 28 of its 48
    opts = Buffer.alloc(48);
    opts.writeBigUInt64LE(48n, 0);
    opts.writeUInt32LE(flags >>> 0, 28);
  }
  const fd = fn.map_create(type, name, keySize, valueSize, maxEntries, opts) as number;
  if (fd < 0) throw new LibbpfError(`creating map ${name}: ${strerror(-fd)}`, -fd);
  return new BpfMap(fd, name);
}

/** Opens a pinned map. */
export function openPinnedMap(path: string): BpfMap {
  const fd = fn.obj_get(path) as number;
  if (fd < 0) {
    const e = errno();
    throw new LibbpfError(
      `cannot open pinned map ${path}: ${strerror(e)}; is the agent's datapath loaded (is bpffs mounted)?`,
      e,
    );
  }
  return new BpfMap(fd, path.split('/').pop() ?? path);
}
