/**
 * The observer: datapath flow events in, Flows out — into the ring of recent flows,
 * to every streaming client, and to counters the metrics read.
 */
import { ABI, type FlowEvent } from './event.js';
import { MonotonicClock, compareTimestamps } from './clock.js';
import { Enricher, emptyFlowContext, type FlowContext } from './enrich.js';
import { checkRequest, compileFilters } from './filter.js';
import { buildFlow } from './flow.js';
import { FlowRing } from './ring.js';
import { Subscription, type FlowSink } from './subscription.js';
import type { Flow, GetFlowsRequest } from './types.js';

export const DEFAULT_RING_CAPACITY = 4095;
export const DEFAULT_CLIENT_QUEUE = 4096;

export interface ObserverOptions {
  /** Flows kept for GetFlows without follow (default 4095). */
  capacity?: number;
  /** Flows one streaming client may have queued before its flows are dropped (default 4096). */
  clientQueue?: number;
  nodeName?: string;
  context?: FlowContext;
  clock?: MonotonicClock;
}

export interface ObserverStatus {
  numFlows: number;
  maxFlows: number;
  seenFlows: number;
  uptimeNs: bigint;
  /** Records the datapath could not hand over because its ring buffer was full. */
  lostEvents: number;
  /** Flows dropped for slow clients, all clients together. */
  clientDroppedFlows: number;
  connectedClients: number;
}

/** Flows processed, by event type and verdict (a policy verdict forwards; a drop, policy or not, drops). */
export interface FlowCounts {
  policyVerdictForwarded: number;
  dropDropped: number;
}

export class Observer {
  readonly nodeName: string;
  private readonly ring: FlowRing<Flow>;
  private readonly enricher: Enricher;
  private readonly clock: MonotonicClock;
  private readonly subs = new Set<Subscription>();
  private readonly listeners = new Set<(f: Flow, ev: FlowEvent) => void>();
  private readonly clientQueue: number;
  private readonly startedAt = process.hrtime.bigint();
  private seen = 0;
  private lost = 0;
  private clientDroppedClosed = 0;
  readonly counts: FlowCounts = { policyVerdictForwarded: 0, dropDropped: 0 };

  constructor(o: ObserverOptions = {}) {
    this.ring = new FlowRing<Flow>(o.capacity ?? DEFAULT_RING_CAPACITY);
    this.clientQueue = o.clientQueue ?? DEFAULT_CLIENT_QUEUE;
    this.nodeName = o.nodeName ?? '';
    this.enricher = new Enricher(o.context ?? emptyFlowContext);
    this.clock = o.clock ?? new MonotonicClock();
  }

  /** A batch of events from the datapath. O(batch x clients); never waits. */
  ingest(events: Iterable<FlowEvent>): void {
    const opts = { clock: this.clock, enricher: this.enricher, nodeName: this.nodeName };
    this.clock.refresh();
    for (const ev of events) {
      const flow = buildFlow(ev, opts);
      this.seen++;
      if (ev.verdict === ABI.verdictDropped) this.counts.dropDropped++;
      else this.counts.policyVerdictForwarded++;
      this.ring.push(flow);
      for (const s of this.subs) s.offer(flow);
      for (const l of this.listeners) l(flow, ev);
    }
  }

  /** The datapath reports `n` more records it could not deliver. */
  addLost(n: number): void {
    if (n <= 0) return;
    this.lost += n;
    for (const s of this.subs) s.noteDatapathLost(n);
  }

  /** Called for every flow, synchronously: keep it O(1). Returns the unsubscribe function. */
  onFlow(fn: (f: Flow, ev: FlowEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Recent flows, oldest first. */
  recent(): Flow[] {
    return this.ring.toArray();
  }

  /**
   * Starts a GetFlows stream into `sink`: the requested history, then (with follow)
   * every new matching flow. Throws FilterError for invalid filters.
   */
  open(req: GetFlowsRequest, sink: FlowSink): Subscription {
    checkRequest(req);
    const pred = compileFilters(req.whitelist, req.blacklist);
    const since = req.since ?? undefined;
    const until = req.until ?? undefined;
    const inWindow = (f: Flow) =>
      (since === undefined || compareTimestamps(f.time, since) >= 0) &&
      (until === undefined || compareTimestamps(f.time, until) <= 0);
    const sub = new Subscription(
      sink,
      pred,
      this.clientQueue,
      until ? (f) => compareTimestamps(f.time, until) <= 0 : undefined,
    );
    let history = this.ring.toArray().filter((f) => inWindow(f) && pred(f));
    const number = req.number ?? 0;
    if (number > 0) history = req.first ? history.slice(0, number) : history.slice(-number);
    else if (since === undefined) history = [];
    sub.preload(history);
    if (req.follow) {
      this.subs.add(sub);
    } else sub.finish();
    return sub;
  }

  /** Ends a client's stream (the client went away). */
  close(sub: Subscription): void {
    if (this.subs.delete(sub)) this.clientDroppedClosed += sub.dropped;
    sub.close();
  }

  status(): ObserverStatus {
    let clientDropped = this.clientDroppedClosed;
    for (const s of this.subs) clientDropped += s.dropped;
    return {
      numFlows: this.ring.size,
      maxFlows: this.ring.capacity,
      seenFlows: this.seen,
      uptimeNs: process.hrtime.bigint() - this.startedAt,
      lostEvents: this.lost,
      clientDroppedFlows: clientDropped,
      connectedClients: this.subs.size,
    };
  }
}
