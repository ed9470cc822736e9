/**
 * The agents a relay talks to: one Peer per node, each with its own gRPC client (mutual TLS)
 * and a health loop (ServerStatus every few seconds) that keeps its state: NODE_CONNECTED
 * while it answers, NODE_UNAVAILABLE while it does not, NODE_GONE once discovery no longer
 * lists it (then its client is closed, and GetNodes shows it gone for a while: `goneRetentionMs`).
 * State changes are announced to listeners (the streams).
 */
import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import { ObserverClient } from '../flows/client.js';
import { NodeState, type Node, type ServerStatusResponse } from '../flows/types.js';

/** One agent's flow API as discovery reports it. */
export interface PeerAddress {
  /** The node name. */
  name: string;
  /** "host:port" of the agent's TCP listener. */
  address: string;
}

export interface PeerOptions {
  credentials: grpc.ChannelCredentials;
  /** The name the agents' certificates carry (checked instead of the address). */
  serverName: string;
  /** Health check period (default 5 s); a failed check marks the node unavailable at once. */
  checkIntervalMs?: number;
  /** How long a node discovery no longer lists stays in GetNodes as NODE_GONE (default 10 min). */
  goneRetentionMs?: number;
}

export class Peer {
  state: number = NodeState.UNKNOWN_NODE_STATE;
  status: ServerStatusResponse | undefined;
  lastError = '';
  client: ObserverClient;

  constructor(
    readonly name: string,
    readonly address: string,
    private readonly o: PeerOptions,
  ) {
    this.client = this.makeClient();
  }

  makeClient(): ObserverClient {
    return new ObserverClient(this.address, this.o.credentials, {
      'grpc.ssl_target_name_override': this.o.serverName,
      'grpc.default_authority': this.o.serverName,
      // find a restarted agent quickly
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2000,
    });
  }

  node(): Node {
    const s = this.status;
    return {
      name: this.name,
      version: s?.version ?? '',
      address: this.address,
      state: this.state,
      tls: { enabled: true, server_name: this.o.serverName },
      uptime_ns: s?.uptime_ns ?? 0,
      num_flows: s?.num_flows ?? 0,
      max_flows: s?.max_flows ?? 0,
      seen_flows: s?.seen_flows ?? 0,
    };
  }
}

export interface PeerChange {
  peer: Peer;
  state: number;
  message: string;
}

/** Every known agent and its state; emits 'change' (PeerChange) when a node's state changes. */
export class PeerSet extends EventEmitter {
  private readonly peers = new Map<string, Peer>();
  /** Nodes discovery dropped: their last Node (state NODE_GONE) and when. */
  private readonly gone = new Map<string, { node: Node; at: number }>();
  private timer: NodeJS.Timeout | undefined;
  private checking = false;

  constructor(private readonly o: PeerOptions) {
    super();
    this.setMaxListeners(0); // one listener per following client
  }

  list(): Peer[] {
    return [...this.peers.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** GetNodes: every peer, and the nodes gone within the retention time, by name. */
  nodes(now = Date.now()): Node[] {
    const keep = this.o.goneRetentionMs ?? 600_000;
    for (const [name, g] of this.gone) if (now - g.at > keep) this.gone.delete(name);
    return [...this.list().map((p) => p.node()), ...[...this.gone.values()].map((g) => g.node)].sort((a, b) =>
      a.name.localeCompare(b.name),
    );
  }

  get(name: string): Peer | undefined {
    return this.peers.get(name);
  }

  /** Discovery's current list: new nodes are added and checked, missing ones are gone. */
  update(addresses: PeerAddress[]): void {
    const want = new Map(addresses.map((a) => [a.name, a]));
    for (const [name, p] of this.peers) {
      const w = want.get(name);
      if (!w || w.address !== p.address) {
        this.peers.delete(name);
        p.client.close();
        this.setState(p, NodeState.NODE_GONE, w ? `moved to ${w.address}` : 'no longer an agent of the cluster');
        if (!w) this.gone.set(name, { node: p.node(), at: Date.now() });
      }
    }
    for (const a of addresses) {
      if (!this.peers.has(a.name)) {
        this.gone.delete(a.name);
        const p = new Peer(a.name, a.address, this.o);
        this.peers.set(a.name, p);
        void this.check(p);
      }
    }
  }

  start(): void {
    this.timer = setInterval(() => void this.checkAll(), this.o.checkIntervalMs ?? 5000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    for (const p of this.peers.values()) p.client.close();
    this.peers.clear();
  }

  /** A stream to this peer failed: mark it unavailable now rather than at the next check. */
  reportFailure(p: Peer, message: string): void {
    if (this.peers.get(p.name) === p) this.setState(p, NodeState.NODE_UNAVAILABLE, message);
  }

  async checkAll(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      await Promise.all(this.list().map((p) => this.check(p)));
    } finally {
      this.checking = false;
    }
  }

  private async check(p: Peer): Promise<void> {
    try {
      p.status = await p.client.serverStatus(2000);
      if (this.peers.get(p.name) === p) this.setState(p, NodeState.NODE_CONNECTED, '');
    } catch (e) {
      const err = e as Error & { details?: string };
      if (this.peers.get(p.name) === p) this.setState(p, NodeState.NODE_UNAVAILABLE, err.details ?? err.message);
    }
  }

  private setState(p: Peer, state: number, message: string): void {
    p.lastError = message;
    if (p.state === state) return;
    p.state = state;
    this.emit('change', { peer: p, state, message } satisfies PeerChange);
  }
}
