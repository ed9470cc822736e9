/**
 * An in-memory `KernelMap` for root-free tests: hash semantics with a capacity, a log of
 * every write in order, and injected faults (a chosen write fails, or the map runs out of
 * room). A batch update writes entry by entry and stops at the first failure, leaving the
 * entries before it written, as the kernel's batch update does.
 */
import type { KernelMap } from './kernel-map.js';
import { MapFullError } from './bpf-map.js';

export interface FakeWrite {
  map: string;
  op: 'update' | 'delete';
  key: Buffer;
  value?: Buffer;
}

/** Decides whether one write fails: return an Error to throw it, undefined to let the write happen. */
export type FaultInjector = (w: FakeWrite) => Error | undefined;

export class FakeMap implements KernelMap {
  private readonly data = new Map<string, [Buffer, Buffer]>();
  /** Called after each write that happened (for checking an invariant after every single write). */
  onWrite: ((w: FakeWrite) => void) | undefined;
  /** Consulted before each write. */
  fault: FaultInjector | undefined;

  constructor(
    readonly name: string,
    public maxEntries: number,
    /** ARRAY maps: every index below maxEntries exists (zero-filled), and nothing is ever deleted. */
    readonly array?: { valueSize: number },
  ) {}

  get size(): number {
    return this.data.size;
  }

  lookup(key: Buffer): Buffer | undefined {
    const e = this.data.get(key.toString('hex'));
    if (e) return Buffer.from(e[1]);
    if (this.array && key.readUInt32LE(0) < this.maxEntries) return Buffer.alloc(this.array.valueSize);
    return undefined;
  }

  update(key: Buffer, value: Buffer): void {
    const h = key.toString('hex');
    const w: FakeWrite = { map: this.name, op: 'update', key, value };
    const err = this.fault?.(w);
    if (err) throw err;
    if (this.array) {
      if (key.readUInt32LE(0) >= this.maxEntries) throw new Error(`map ${this.name}: index out of range`);
    } else if (!this.data.has(h) && this.data.size >= this.maxEntries) {
      throw new MapFullError(this.name, this.maxEntries);
    }
    this.data.set(h, [Buffer.from(key), Buffer.from(value)]);
    this.onWrite?.(w);
  }

  delete(key: Buffer): boolean {
    if (this.array) throw new Error(`map ${this.name}: array entries cannot be deleted`);
    const h = key.toString('hex');
    if (!this.data.has(h)) return false;
    const w: FakeWrite = { map: this.name, op: 'delete', key };
    const err = this.fault?.(w);
    if (err) throw err;
    this.data.delete(h);
    this.onWrite?.(w);
    return true;
  }

  updateBatch(entries: Array<[Buffer, Buffer]>): void {
    for (const [k, v] of entries) this.update(k, v);
  }

  deleteBatch(keys: Buffer[]): number {
    let n = 0;
    for (const k of keys) if (this.delete(k)) n++;
    return n;
  }

  *entries(): Generator<[Buffer, Buffer]> {
    for (const [k, v] of [...this.data.values()]) yield [Buffer.from(k), Buffer.from(v)];
  }

  /** Writes that bypass faults and the write log: a stand-in for someone editing the map by hand. */
  tamper(key: Buffer, value: Buffer | undefined): void {
    const h = key.toString('hex');
    if (value) this.data.set(h, [Buffer.from(key), Buffer.from(value)]);
    else this.data.delete(h);
  }
}
