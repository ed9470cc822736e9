/**
 * The last N flows, oldest first. A fixed array written in a circle: no allocation
 * per flow, O(1) push, and memory bounded by the capacity.
 */
export class FlowRing<T> {
  private readonly slots: (T | undefined)[];
  private next = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new Error(`flow ring capacity must be a positive integer, got ${capacity}`);
    }
    this.slots = new Array<T | undefined>(capacity);
  }

  get size(): number {
    return this.count;
  }

  push(item: T): void {
    this.slots[this.next] = item;
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
  }

  /** Oldest to newest. */
  toArray(): T[] {
    const out: T[] = new Array<T>(this.count);
    const start = (this.next - this.count + this.capacity) % this.capacity;
    for (let i = 0; i < this.count; i++) out[i] = this.slots[(start + i) % this.capacity] as T;
    return out;
  }
}
