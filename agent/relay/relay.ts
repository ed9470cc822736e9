/**
 * The relay's Observer service: one cluster-wide view over every agent's flow API.
 *
 * GetFlows, history: each connected agent is asked for the same request up to a cut time t0
 * (its `number` most recent flows, or those since a time); the answers are merged in time
 * order and, for `number` N, the N most recent (or first) of the union are sent: the N most
 * recent cluster-wide. With follow, each agent is then followed from t0 (`since` t0, so no
 * flow falls between history and follow whatever the clocks say; a flow seen twice at t0 is
 * sent once, by UUID), and live flows pass a short reordering window so they leave in time
 * order. An agent that fails is announced to the client (node_status NODE_UNAVAILABLE) and
 * the stream goes on with the others; when it answers again it is followed again from the
 * last flow the stream had from it. A slow client is handled as the agent handles it: a
 * bounded queue, further flows dropped for it alone, counted and announced (LostEvent).
 *
 * GetNodes: every agent discovery knows, with its state and last ServerStatus.
 * ServerStatus: the agents' figures summed, uptime the longest, connected/unavailable nodes.
 */
import * as grpc from '@grpc/grpc-js';
import { compareTimestamps, nsToTimestamp, timestampToMs } from '../flows/clock.js';
import { checkRequest, compileFilters, FilterError } from '../flows/filter.js';
import { encodeFlowResponse, encodeLostResponse, encodeNodeStatusResponse } from '../flows/proto.js';
import type { ObserverBackend } from '../flows/server.js';
import { Subscription, type FlowSink, type SinkItem } from '../flows/subscription.js';
import {
  LostEventSource,
  NodeState,
  type Flow,
  type GetFlowsRequest,
  type GetFlowsResponse,
  type GetNodesResponse,
  type ServerStatusResponse,
  type Timestamp,
} from '../flows/types.js';
import type { Peer, PeerChange, PeerSet } from './peers.js';

export interface RelayOptions {
  version: string;
  /** Flows one following client may have queued before its flows are dropped (default 4096). */
  clientQueue?: number;
  /** How long live flows wait to be put in time order across nodes (default 200 ms). */
  reorderMs?: number;
  /** How long the history phase waits for one agent (default 10 s). */
  historyTimeoutMs?: number;
}

const MAX_IN_FLIGHT = 256;

/** A sink writing each flow with its own node's name. */
function relaySink(call: grpc.ServerWritableStream<GetFlowsRequest, Buffer>): FlowSink {
  let inFlight = 0;
  let waiting = false;
  let drain: (() => void) | undefined;
  const written = () => {
    inFlight--;
    if (waiting && inFlight <= MAX_IN_FLIGHT / 2) {
      waiting = false;
      drain?.();
    }
  };
  const send = (b: Buffer) => {
    inFlight++;
    call.write(b, written);
    if (inFlight >= MAX_IN_FLIGHT) waiting = true;
    return !waiting;
  };
  return {
    write(item: SinkItem): boolean {
      if ('flow' in item) return send(encodeFlowResponse(item.flow, item.flow.node_name));
      const source =
        item.source === 'datapath' ? LostEventSource.PERF_EVENT_RING_BUFFER : LostEventSource.OBSERVER_EVENTS_QUEUE;
      return send(encodeLostResponse(source, item.lost, '', nowTs()));
    },
    onDrain(cb) {
      drain = cb;
    },
    end() {
      call.end();
    },
  };
}

const nowTs = (): Timestamp => nsToTimestamp(BigInt(Date.now()) * 1_000_000n);
const byTime = (a: Flow, b: Flow) => compareTimestamps(a.time, b.time);

export class Relay implements ObserverBackend {
  readonly nodeName = '';
  private readonly startedAt = process.hrtime.bigint();
  private clientDropped = 0;
  private following = 0;

  constructor(
    private readonly peers: PeerSet,
    private readonly o: RelayOptions,
  ) {}

  getNodes(): Promise<GetNodesResponse> {
    return Promise.resolve({ nodes: this.peers.nodes() });
  }

  async serverStatus(): Promise<ServerStatusResponse> {
    const ps = this.peers.list();
    // fresh figures from every node that answers; the last known ones otherwise
    await Promise.all(
      ps
        .filter((p) => p.state === NodeState.NODE_CONNECTED)
        .map((p) =>
          p.client.serverStatus(2000).then(
            (s) => {
              p.status = s;
            },
            () => undefined,
          ),
        ),
    );
    const up = ps.filter((p) => p.state === NodeState.NODE_CONNECTED);
    const down = ps.filter((p) => p.state !== NodeState.NODE_CONNECTED);
    const sum = (k: 'num_flows' | 'max_flows' | 'seen_flows' | 'lost_events' | 'client_dropped_flows') =>
      up.reduce((n, p) => n + Number(p.status?.[k] ?? 0), 0);
    return {
      num_flows: sum('num_flows'),
      max_flows: sum('max_flows'),
      seen_flows: sum('seen_flows'),
      uptime_ns: Math.max(0, ...up.map((p) => Number(p.status?.uptime_ns ?? 0))),
      num_connected_nodes: { value: up.length },
      num_unavailable_nodes: { value: down.length },
      unavailable_nodes: down.map((p) => p.name),
      version: this.o.version,
      lost_events: sum('lost_events'),
      client_dropped_flows: sum('client_dropped_flows') + this.clientDropped,
      connected_clients: this.following,
      node_name: '',
    };
  }

  getFlows(call: grpc.ServerWritableStream<GetFlowsRequest, Buffer>): void {
    const req = call.request;
    let pred;
    try {
      checkRequest(req);
      pred = compileFilters(req.whitelist, req.blacklist);
    } catch (e) {
      if (e instanceof FilterError) {
        call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: `invalid flow filter: ${e.message}` });
        return;
      }
      throw e;
    }
    void this.serve(call, req, pred);
  }

  private async serve(
    call: grpc.ServerWritableStream<GetFlowsRequest, Buffer>,
    req: GetFlowsRequest,
    pred: (f: Flow) => boolean,
  ): Promise<void> {
    const sub = new Subscription(
      relaySink(call),
      pred,
      this.o.clientQueue ?? 4096,
      req.until ? (f) => compareTimestamps(f.time, req.until!) <= 0 : undefined,
    );
    const streams = new Map<string, grpc.ClientReadableStream<GetFlowsResponse>>();
    let closed = false;
    // Per node: the time of the last flow sent, and the UUIDs sent at that time. A stream
    // (re)opened `since` that time sends those again; they are skipped.
    const lastSeen = new Map<string, Timestamp>();
    const atLast = new Map<string, Set<string>>();
    const sent = (f: Flow) => {
      const t = lastSeen.get(f.node_name);
      if (t === undefined || compareTimestamps(f.time, t) > 0) {
        lastSeen.set(f.node_name, f.time);
        atLast.set(f.node_name, new Set([f.uuid]));
      } else if (compareTimestamps(f.time, t) === 0) atLast.get(f.node_name)!.add(f.uuid);
    };
    const seenBefore = (f: Flow) => {
      const t = lastSeen.get(f.node_name);
      return t !== undefined && compareTimestamps(f.time, t) <= 0 && atLast.get(f.node_name)!.has(f.uuid);
    };
    let buffer: Flow[] = [];
    const timers: NodeJS.Timeout[] = [];
    const status = (state: number, names: string[], message: string) => {
      if (!closed) call.write(encodeNodeStatusResponse({ state_change: state, node_names: names, message }, nowTs()));
    };

    const listen: { onChange?: (c: PeerChange) => void } = {};
    const cleanup = () => {
      if (closed) return;
      closed = true;
      for (const t of timers) clearInterval(t);
      for (const s of streams.values()) s.cancel();
      streams.clear();
      if (listen.onChange) this.peers.off('change', listen.onChange);
      this.clientDropped += sub.dropped;
      if (req.follow) this.following--;
      sub.close();
    };
    call.on('cancelled', cleanup);
    call.on('close', cleanup);
    call.on('error', cleanup);

    // History up to t0 from every connected agent, merged.
    const t0 = nowTs();
    const until = req.until && compareTimestamps(req.until, t0) < 0 ? req.until : t0;
    const connected = this.peers.list().filter((p) => p.state === NodeState.NODE_CONNECTED);
    const unavailable = this.peers.list().filter((p) => p.state !== NodeState.NODE_CONNECTED);
    if (unavailable.length)
      status(
        NodeState.NODE_UNAVAILABLE,
        unavailable.map((p) => p.name),
        'not answering: their flows are missing',
      );
    const histReq: GetFlowsRequest = { ...req, follow: false, until };
    const answers = await Promise.all(
      connected.map(async (p) => {
        try {
          const rs = await p.client.collect(histReq, this.o.historyTimeoutMs ?? 10_000);
          return rs.filter((r) => r.flow).map((r) => withNode(r.flow!, p, r.node_name));
        } catch (e) {
          const err = e as Error & { details?: string; code?: number };
          if (err.code === grpc.status.INVALID_ARGUMENT) throw e;
          this.peers.reportFailure(p, err.details ?? err.message);
          status(NodeState.NODE_UNAVAILABLE, [p.name], err.details ?? err.message);
          return [];
        }
      }),
    ).catch((e: Error & { details?: string }) => {
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: e.details ?? e.message });
      cleanup();
      return undefined;
    });
    if (answers === undefined || closed) return;
    let history = answers.flat().sort(byTime);
    const n = req.number ?? 0;
    if (n > 0) history = req.first ? history.slice(0, n) : history.slice(-n);
    for (const f of history) sent(f);
    sub.preload(history);
    if (!req.follow) {
      sub.finish();
      return;
    }

    // Follow every agent from t0; live flows leave in time order after a short window.
    this.following++;
    const reorderMs = this.o.reorderMs ?? 200;
    const flush = (all: boolean) => {
      if (buffer.length === 0) return;
      buffer.sort(byTime);
      const cut = Date.now() - reorderMs;
      let i = 0;
      if (all) i = buffer.length;
      else while (i < buffer.length && timestampToMs(buffer[i]!.time) <= cut) i++;
      for (const f of buffer.slice(0, i)) sub.offer(f);
      buffer = buffer.slice(i);
    };
    timers.push(setInterval(() => flush(false), Math.max(20, reorderMs / 4)));
    const follow = (p: Peer, since: Timestamp) => {
      if (closed || streams.has(p.name)) return;
      const s = p.client.getFlows({ ...req, number: 0, first: false, follow: true, since, until: req.until ?? null });
      streams.set(p.name, s);
      s.on('data', (r: GetFlowsResponse) => {
        if (!r.flow) return;
        const f = withNode(r.flow, p, r.node_name);
        if (seenBefore(f)) return;
        sent(f);
        buffer.push(f);
        // bounded: beyond this many waiting flows, order gives way to memory
        if (buffer.length > 4 * (this.o.clientQueue ?? 4096)) flush(true);
      });
      s.on('error', (e: grpc.ServiceError) => {
        if (streams.get(p.name) !== s) return;
        streams.delete(p.name);
        if (closed || e.code === grpc.status.CANCELLED) return;
        this.peers.reportFailure(p, e.details || e.message);
        status(NodeState.NODE_UNAVAILABLE, [p.name], e.details || e.message);
      });
      s.on('end', () => {
        if (streams.get(p.name) === s) streams.delete(p.name);
      });
    };
    listen.onChange = (c: PeerChange) => {
      if (closed) return;
      if (c.state === NodeState.NODE_CONNECTED) {
        status(NodeState.NODE_CONNECTED, [c.peer.name], '');
        follow(c.peer, lastSeen.get(c.peer.name) ?? t0);
      } else {
        const s = streams.get(c.peer.name);
        if (s) {
          streams.delete(c.peer.name);
          s.cancel();
        }
        status(c.state, [c.peer.name], c.message);
      }
    };
    this.peers.on('change', listen.onChange);
    for (const p of connected) follow(p, t0);
  }
}

/** A flow as the relay sends it: node_name set (the agent's, else the node discovery names). */
function withNode(f: Flow, p: Peer, responseNode: string): Flow {
  if (!f.node_name) f.node_name = responseNode || p.name;
  return f;
}
