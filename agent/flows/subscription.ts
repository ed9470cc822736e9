/**
 * One GetFlows client: a bounded queue between the observer and the client's stream.
 * The observer only ever appends (O(1)); when the client does not keep up the queue
 * fills, further flows are dropped for this client alone and counted, and the client
 * is told how many with a LostEvent before the next flow it receives.
 */
import type { FlowPredicate } from './filter.js';
import type { Flow } from './types.js';

export interface FlowSink {
  /** Writes one item; false when the sink wants no more until `drain`. */
  write(item: SinkItem): boolean;
  onDrain(cb: () => void): void;
  /** No more items will come (non-follow request fully sent). */
  end(): void;
}

/** Where flows were lost before reaching this client (the flow API's LostEventSource). */
export type LostSource = 'datapath' | 'client-queue';
export type SinkItem = { flow: Flow } | { lost: number; source: LostSource };

export class Subscription {
  private queue: Flow[] = [];
  private head = 0;
  private writable = true;
  private scheduled = false;
  private closed = false;
  private ending = false;
  /** Flows dropped for this client because its queue was full. */
  dropped = 0;
  private droppedReported = 0;
  private datapathLost = 0;
  delivered = 0;

  constructor(
    private readonly sink: FlowSink,
    private readonly predicate: FlowPredicate,
    private readonly capacity: number,
    private readonly until?: (f: Flow) => boolean,
  ) {
    sink.onDrain(() => {
      this.writable = true;
      this.pump();
    });
  }

  get queued(): number {
    return this.queue.length - this.head;
  }

  /** History at start: always queued whole (bounded by the ring's capacity). */
  preload(flows: Flow[]): void {
    for (const f of flows) this.queue.push(f);
    this.schedule();
  }

  /** A new flow from the observer. Never blocks, never throws. */
  offer(f: Flow): void {
    if (this.closed || this.ending || !this.predicate(f)) return;
    if (this.until && !this.until(f)) return;
    if (this.queued >= this.capacity) {
      this.dropped++;
      return;
    }
    this.queue.push(f);
    this.schedule();
  }

  /** The datapath lost `n` records: tell this client before its next flow. */
  noteDatapathLost(n: number): void {
    if (this.closed || this.ending || n <= 0) return;
    this.datapathLost += n;
    this.schedule();
  }

  /** Sends what is queued, then ends the stream. */
  finish(): void {
    this.ending = true;
    this.schedule();
  }

  close(): void {
    this.closed = true;
    this.queue = [];
    this.head = 0;
  }

  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.closed) return;
    while (this.writable) {
      if (this.datapathLost > 0) {
        const n = this.datapathLost;
        this.datapathLost = 0;
        this.writable = this.sink.write({ lost: n, source: 'datapath' });
        continue;
      }
      if (this.dropped > this.droppedReported) {
        const n = this.dropped - this.droppedReported;
        this.droppedReported = this.dropped;
        this.writable = this.sink.write({ lost: n, source: 'client-queue' });
        continue;
      }
      if (this.head >= this.queue.length) break;
      const f = this.queue[this.head++]!;
      this.delivered++;
      this.writable = this.sink.write({ flow: f });
    }
    if (this.head >= this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    if (this.ending && this.queued === 0 && this.dropped === this.droppedReported) {
      this.closed = true;
      this.sink.end();
    }
  }
}
