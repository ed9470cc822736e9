/**
 * The node agent in Kubernetes mode: the Kubernetes source feeding the source-agnostic pipeline
 * (agent/daemon.ts: Store -> PolicyEngine -> enforcement), pod interface discovery for local pods,
 * health endpoints, flows and metrics.
 *
 * Restart safety: nothing touches the maps before the first full sync. Until then changes only
 * reach the store, the compiler and the syncer's queue, which is paused; on first sync the whole
 * desired state is synced against what the previous agent left pinned (adoption), and only then
 * does the queue run. An agent that starts against an unreachable API server keeps
 * enforcing what is pinned and is not ready.
 */
import type { KubeApiConfig } from '../sources/kube-api.js';
import { Agent } from '../daemon.js';
import { DatapathEnforcement, SyncError, type MapPressure } from '../enforcement.js';
import type { SyncerStatus } from '../datapath/syncer.js';
import { parseMapMax } from '../datapath/map-max.js';
import type { Observability } from '../observability.js';
import { formatProblem, PolicyEngine } from '../policy/index.js';
import { objectKey, toKubeObject, type KubeKind, type KubeObject, type Pod } from '../store/index.js';
import { KubernetesSource, objectRef, type KubernetesChange, type WatchedResource } from '../sources/kubernetes.js';
import type { AgentConfig } from './config.js';
import { PolicyEventRecorder } from './events.js';
import { startHealthServerOffLoop, type HealthServer } from './health.js';
import { startStatusServer, type StatusServer } from './status.js';
import { sliceChanges } from './slices.js';
import { formatFieldError, validateObject } from '../store/validate.js';
import type { ResourceStatus } from '../sources/kubernetes.js';
import { startNodeObservability } from './observe.js';
import { findPodInterface, findPodInterfaces, type PodInterface } from './interfaces.js';
import { nodeAddresses, NodePortInterfaces, type NodePortStatus } from './nodeport.js';
import type { Logger } from './log.js';
import type { MemorySettler, SettleStats } from './memory.js';
import { TurnBatcher } from '../batcher.js';
import { OffLoopHost } from '../offloop.js';
import { withServices } from '../services/index.js';
import { POLICY_RESOURCES, WATCHED_RESOURCES } from '../sources/kubernetes.js';

const KIND_OF: Record<WatchedResource, KubeKind> = {
  namespaces: 'Namespace',
  nodes: 'Node',
  pods: 'Pod',
  networkpolicies: 'NetworkPolicy',
  services: 'Service',
  endpointslices: 'EndpointSlice',
};

export interface NodeAgentOptions {
  config: AgentConfig;
  kubeConfig: KubeApiConfig;
  log: Logger;
  /** Compiled BPF object (default build/bpf/weir.o). */
  objectPath?: string;
  /** Flow API and /metrics (default on). */
  observability?: boolean;
  /**
   * Settles the process memory (node/memory.ts) once the first full sync is enforced, before
   * readiness is reported, and when the agent goes quiet after a burst of changes: `weir agent`
   * gives one. Not for an agent inside another process.
   */
  memory?: MemorySettler;
}

export interface NodeAgentStatus {
  node: string;
  ready: boolean;
  /** Milliseconds from start until the first full sync was enforced. */
  firstSyncMs?: number;
  revision: number;
  endpoints: { enforced: number; waitingForInterface: string[] };
  watches: ReturnType<KubernetesSource['status']>;
  kubernetesEvents: ReturnType<KubernetesSource['eventCounts']>;
  rejectedObjects: number;
  /** Objects the API server should have refused (only a non-conforming API server sends them). */
  invalidObjects: number;
  /** What the API server refuses the agent (403): the agent is not ready while any is listed. */
  forbidden: Array<NonNullable<ResourceStatus['forbidden']>>;
  policyErrors: string[];
  policyWarnings: string[];
  /** The syncer's queue: keys failing (previous state kept, retried with backoff), drift repaired. */
  sync: SyncerStatus;
  /** Maps filled to the pressure threshold or beyond. */
  mapPressure: MapPressure[];
  /** The interfaces whose tc hooks translate NodePorts (absent when Services are off). */
  nodePorts?: NodePortStatus;
  /** Memory settles (each a pause of the main loop) and what they took (absent without a settler). */
  memorySettles?: SettleStats;
}

/** How often the NodePort interfaces are chosen again (an interface that appeared, a new ifindex). */
const NODEPORT_REFRESH_MS = 10_000;

export class NodeAgent {
  readonly source: KubernetesSource;
  readonly agent: Agent;
  readonly compiler: PolicyEngine;
  private readonly datapath: DatapathEnforcement;
  private health?: HealthServer;
  private statusServer?: StatusServer;
  /** One native thread (agent/offloop.ts) serves health, status and metrics, so they answer during a compile. */
  private readonly offLoop = new OffLoopHost();
  private obs?: Observability;
  private invalid = 0;
  /** "verb|resource" refusals an Event was posted for. */
  private readonly refusals = new Set<string>();
  private ready = false;
  private firstSyncMs?: number;
  private readonly startedAt = Date.now();
  /** Changes are applied in one batch per burst (a relist delivers everything in one turn of the event loop). */
  private readonly changes = new TurnBatcher<KubernetesChange>(
    (batch) => this.apply(batch),
    (err) =>
      this.opts.log.error(`applying Kubernetes changes failed: ${err instanceof Error ? err.message : String(err)}`),
  );
  /** Host-side interfaces of local pods, by "namespace/name". */
  private readonly interfaces = new Map<string, PodInterface & { ip: string }>();
  /** Local pods with IPs whose veth was not found yet. */
  private readonly unresolved = new Set<string>();
  private retryTimer?: NodeJS.Timeout;
  private rejected = 0;
  private stopped = false;
  private readonly events: PolicyEventRecorder;
  /**
   * from_node / to_node on the node's external interfaces. With Services off it chooses none, so
   * its one refresh detaches what an earlier agent with Services on left attached.
   */
  private readonly nodePorts: NodePortInterfaces;
  private nodePortTimer?: NodeJS.Timeout;
  /** NodePort refreshes run one at a time. */
  private nodePortRefresh: Promise<void> = Promise.resolve();

  private constructor(private readonly opts: NodeAgentOptions) {
    const c = opts.config;
    this.datapath = new DatapathEnforcement({
      pinRoot: c.pinRoot,
      ...(opts.objectPath ? { objectPath: opts.objectPath } : {}),
      ifindexOf: (key) => this.interfaces.get(key)?.ifindex,
      hostAllow: c.hostAccess,
      allowedFlows: c.allowedFlows,
      localDelivery: c.localDelivery,
      resyncIntervalMs: c.resyncIntervalSeconds * 1000,
      ...(c.mapMax ? { mapMax: parseMapMax(c.mapMax.split(',')) } : {}),
      log: (l) => opts.log.debug(l),
      onPressure: (maps) => {
        for (const m of maps) {
          opts.log.warn(`BPF map ${m.map} is ${Math.round(m.fill * 100)}% full (${m.entries} of ${m.capacity})`);
          void this.events.mapPressure(m.map, m.entries, m.capacity);
        }
      },
    });
    const dp = this.datapath.datapath;
    this.nodePorts = new NodePortInterfaces(
      c.services ? c.nodePortInterfaces : [],
      {
        attach: (ifindex) => dp.attachNodePort({ ifindex }),
        detach: (ifindex) => dp.detach({ ifindex }),
        programOn: (ifindex) => dp.programOn({ ifindex }),
      },
      opts.log,
    );
    this.compiler = new PolicyEngine({
      nodeName: c.nodeName,
      clusterPodCIDRs: c.clusterPodCIDRs,
      cidrBudget: { perNamespace: c.cidrPrefixesPerNamespace },
    });
    this.agent = new Agent({
      nodeName: c.nodeName,
      compiler: c.services ? withServices(this.compiler, c.nodeName) : this.compiler,
      enforcement: this.datapath,
      log: (l) => opts.log.debug(l),
    });
    this.agent.events.on('failed', (err) => opts.log.error(`could not realize a change: ${err.message}`));
    this.events = new PolicyEventRecorder(opts.kubeConfig, c.nodeName, (m) => opts.log.debug(m));
    this.source = new KubernetesSource({
      kubeConfig: opts.kubeConfig,
      watchTimeoutSeconds: c.watchTimeoutSeconds,
      resources: c.services ? WATCHED_RESOURCES : POLICY_RESOURCES,
      onChange: (change) => this.enqueue(change),
      // a list page at a time: the next one waits until this one is in the Store and compiled
      consumed: () => this.changes.drain(),
      onError: (resource, err, retryInMs) => {
        opts.log.warn(
          `watch of ${resource} failed (${err.message}); retrying in ${retryInMs} ms, enforcement continues with the last known state`,
        );
        this.checkPermissions();
        this.health?.refresh();
      },
    });
  }

  /** Starts everything; resolves once the health endpoints serve (readiness comes later). */
  static async start(opts: NodeAgentOptions): Promise<NodeAgent> {
    const a = new NodeAgent(opts);
    const c = opts.config;
    a.health = await startHealthServerOffLoop(
      {
        healthz: () => ({ ok: !a.stopped }),
        readyz: () => a.readyz(),
      },
      c.healthPort,
      c.healthHost,
      { offLoop: a.offLoop },
    );
    a.statusServer = await startStatusServer(c.runDir, () => a.status(), { host: a.offLoop });
    if (opts.observability !== false) {
      a.obs = await startNodeObservability(
        c,
        a.agent,
        a.compiler,
        a.datapath,
        (ifindex) => [...a.interfaces.values()].find((i) => i.ifindex === ifindex)?.name,
        (ifindex) => [...a.interfaces.entries()].find(([, i]) => i.ifindex === ifindex)?.[0],
        a.offLoop,
      );
    }
    await a.refreshAnswers();
    a.source.start();
    void a.firstSync();
    return a;
  }

  /**
   * Hands the current status and metrics to the thread serving them, which answers with them
   * while the main loop is busy (a large policy compiling): at start and once the first sync is
   * enforced. Every answer it serves later is kept too. Not after every change: status and
   * metrics read the kernel maps' fill, which at 100,000 pods is not free.
   */
  private async refreshAnswers(): Promise<void> {
    await Promise.all([this.statusServer?.refresh(), this.obs?.refreshMetrics()]);
  }

  /** The port the health endpoints listen on (the configured one, or the one picked for 0). */
  get healthPort(): number {
    return this.health?.port ?? this.opts.config.healthPort;
  }

  private forbidden(): Array<NonNullable<ResourceStatus['forbidden']>> {
    return Object.values(this.source.status())
      .map((s) => s.forbidden)
      .filter((f): f is NonNullable<ResourceStatus['forbidden']> => f !== undefined);
  }

  private readyz(): { ok: boolean; reason?: string } {
    if (!this.ready) return { ok: false, reason: this.notReadyReason() };
    const refused = this.checkPermissions();
    if (refused.length > 0)
      return {
        ok: false,
        reason: `the API server refuses ${refused.map((f) => `${f.verb} ${f.resource}`).join(', ')} (403 Forbidden); enforcing the last known state, which may be stale: grant the weir ClusterRole list and watch on ${[...new Set(refused.map((f) => f.resource))].join(', ')}`,
      };
    return { ok: true };
  }

  /** Posts an Event for each new refusal (403) and re-arms those that ended; returns the current ones. */
  private checkPermissions(): Array<NonNullable<ResourceStatus['forbidden']>> {
    const now = this.forbidden();
    const keys = new Set(now.map((f) => `${f.verb}|${f.resource}`));
    for (const k of [...this.refusals]) {
      if (keys.has(k)) continue;
      this.refusals.delete(k);
      const [verb, resource] = k.split('|') as [string, string];
      this.events.permissionRestored(verb, resource);
      this.opts.log.info(`the API server allows ${verb} ${resource} again`);
    }
    for (const f of now) {
      const k = `${f.verb}|${f.resource}`;
      if (this.refusals.has(k)) continue;
      this.refusals.add(k);
      this.opts.log.error(
        `the API server refuses ${f.verb} ${f.resource} (403 Forbidden: ${f.message}); not ready until the weir ClusterRole grants it`,
      );
      void this.events.reportMissingPermission(f.verb, f.resource, f.message);
    }
    return now;
  }

  private notReadyReason(): string {
    const waiting = Object.entries(this.source.status())
      .filter(([, s]) => !s.synced)
      .map(([r, s]) => `${r}${s.lastError ? ` (${s.lastError})` : ''}`);
    if (waiting.length) return `waiting for the first list of ${waiting.join(', ')} from the API server`;
    return 'enforcing the first full sync in the datapath';
  }

  private async firstSync(): Promise<void> {
    await this.source.synced;
    await this.changes.drain();
    if (this.stopped) return;
    // Full reconcile against the pinned maps (adoption), then increments flow. Until it succeeds
    // the maps keep what was pinned and the agent stays not ready.
    for (;;) {
      try {
        await this.agent.start();
        break;
      } catch (err) {
        if (this.stopped) return;
        if (err instanceof SyncError) {
          // the queue runs: what could not be written keeps its previous state and is retried
          this.opts.log.warn(err.message);
          break;
        }
        this.opts.log.error(
          `the first full sync could not be enforced (${err instanceof Error ? err.message : String(err)}); retrying in 5 s`,
        );
        await new Promise((r) => setTimeout(r, 5000));
      }
    }
    this.ready = true;
    this.firstSyncMs = Date.now() - this.startedAt;
    this.opts.memory?.firstSync();
    this.health?.refresh();
    void this.refreshAnswers();
    const s = this.compiler.stats;
    await this.refreshNodePorts();
    if (this.opts.config.services) {
      this.nodePortTimer = setInterval(() => void this.refreshNodePorts(), NODEPORT_REFRESH_MS);
      this.nodePortTimer.unref();
    }
    this.opts.log.info(
      `ready: first sync enforced in ${this.firstSyncMs} ms (${s.endpoints} local endpoints, ${s.pods} pods, ${s.policies} policies, ${this.unresolved.size} without interface)`,
    );
    this.reportProblems();
  }

  private enqueue(change: KubernetesChange): void {
    this.obs?.metrics.kubernetesEvent(change.resource, change.action);
    this.changes.push(change);
  }

  private isLocalEndpoint(o: KubeObject): o is Pod {
    return o.kind === 'Pod' && o.nodeName === this.opts.config.nodeName && !o.hostNetwork && o.ips.length > 0;
  }

  private async apply(batch: KubernetesChange[]): Promise<void> {
    this.opts.memory?.busy();
    // Last change per object wins within a batch.
    const last = new Map<string, { kind: KubeKind; key: string; obj?: KubeObject }>();
    for (const c of batch) {
      const kind = KIND_OF[c.resource];
      const key = objectRef(c.object);
      if (c.action === 'delete') {
        last.set(`${kind}|${key}`, { kind, key });
        continue;
      }
      const problems = validateObject(c.object);
      if (problems.length > 0) {
        // A conforming API server never sends these. The object is still used: the compiler
        // refuses what it cannot read (a bad rule allows nothing) and identities escape labels,
        // so ignoring it would only open what it isolates.
        this.invalid++;
        this.opts.log.warn(`${kind} ${key} is not valid Kubernetes: ${problems.map(formatFieldError).join('; ')}`);
      }
      try {
        const obj = toKubeObject(c.object);
        if (obj) last.set(`${kind}|${objectKey(obj)}`, { kind, key: objectKey(obj), obj });
      } catch (err) {
        this.rejected++;
        this.opts.log.warn(`ignoring ${kind} ${key}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    const upserts: KubeObject[] = [];
    const deletes: Array<{ kind: KubeKind; key: string }> = [];
    for (const e of last.values()) {
      if (e.obj) upserts.push(e.obj);
      else deletes.push(e);
    }
    // Interfaces must be known before the compiler's endpoints reach the syncer.
    await this.resolveInterfaces(upserts.filter((o): o is Pod => this.isLocalEndpoint(o)));
    for (const o of upserts) {
      if (o.kind === 'Pod' && !this.isLocalEndpoint(o)) this.forget(objectKey(o));
    }
    for (const d of deletes) if (d.kind === 'Pod') this.forget(d.key);
    // Bounded slices, the event loop turning between them: health, status and metrics answer
    // during a burst of large policies.
    const slices = sliceChanges(upserts, deletes);
    for (const [i, slice] of slices.entries()) {
      if (i > 0) await new Promise((r) => setImmediate(r));
      await this.agent.update(slice.upserts, slice.deletes);
    }
    const nodeName = this.opts.config.nodeName;
    if (
      this.ready &&
      this.opts.config.services &&
      (upserts.some((o) => o.kind === 'Node' && o.name === nodeName) ||
        deletes.some((d) => d.kind === 'Node' && d.key === nodeName))
    )
      await this.refreshNodePorts();
    if (
      this.ready &&
      (deletes.some((d) => d.kind === 'NetworkPolicy') || upserts.some((o) => o.kind === 'NetworkPolicy'))
    )
      this.reportProblems();
    // a burst's garbage and the room V8 grew for it are given back once the changes stop
    if (this.ready) this.opts.memory?.changed(batch.length);
  }

  /**
   * Attaches the NodePort programs to the interfaces that hold this node's addresses now (or the
   * configured ones); with Services off, to none. One refresh at a time.
   */
  private refreshNodePorts(): Promise<void> {
    const c = this.opts.config;
    this.nodePortRefresh = this.nodePortRefresh.then(async () => {
      if (this.stopped) return;
      try {
        await this.nodePorts.refresh(c.services ? nodeAddresses(this.agent.store.get('Node', c.nodeName)) : []);
      } catch (err) {
        this.opts.log.warn(`choosing the NodePort interfaces: ${err instanceof Error ? err.message : String(err)}`);
      }
    });
    return this.nodePortRefresh;
  }

  private forget(key: string): void {
    this.interfaces.delete(key);
    this.unresolved.delete(key);
  }

  /** Interfaces of many local pods: looked up together (one `ip -batch`), then booked one by one. */
  private async resolveInterfaces(pods: Pod[]): Promise<void> {
    const todo = pods.filter((p) => {
      const known = this.interfaces.get(objectKey(p));
      return !(known && p.ips.includes(known.ip));
    });
    if (todo.length === 0) return;
    const found = await findPodInterfaces(todo.flatMap((p) => p.ips));
    await Promise.all(todo.map((p) => this.resolveInterface(p, found)));
  }

  private async resolveInterface(pod: Pod, looked?: Map<string, PodInterface | undefined>): Promise<void> {
    const key = objectKey(pod);
    const known = this.interfaces.get(key);
    if (known && pod.ips.includes(known.ip)) return;
    for (const ip of pod.ips) {
      const found = looked ? looked.get(ip) : await findPodInterface(ip);
      if (found) {
        this.interfaces.set(key, { ...found, ip });
        this.unresolved.delete(key);
        this.opts.log.debug(
          `pod ${key}: host-side interface ${found.name} (ifindex ${found.ifindex}, by ${found.via})`,
        );
        return;
      }
    }
    this.interfaces.delete(key);
    if (!this.unresolved.has(key)) {
      this.opts.log.warn(`pod ${key} (${pod.ips.join(', ')}): no host-side veth found; not enforced until it appears`);
    }
    this.unresolved.add(key);
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.stopped) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.changes.run(() => this.retryUnresolved());
    }, 1000);
    this.retryTimer.unref();
  }

  private async retryUnresolved(): Promise<void> {
    const found: string[] = [];
    for (const key of [...this.unresolved]) {
      const pod = this.compiler.getPod(key)?.pod;
      if (!pod || !this.isLocalEndpoint(pod)) {
        this.unresolved.delete(key);
        continue;
      }
      await this.resolveInterface(pod);
      if (this.interfaces.has(key)) found.push(key);
    }
    // Endpoints that got their interface: the syncer writes and attaches them.
    if (found.length > 0 && this.ready) await this.datapath.retryPending(found);
    if (this.unresolved.size > 0) this.scheduleRetry();
  }

  /** Logs policy problems and records them as Kubernetes Events on the policies (once each). */
  private reportProblems(): void {
    const errors = this.compiler.errors();
    const warnings = this.compiler.warnings();
    for (const p of errors) this.opts.log.warn(formatProblem(p));
    for (const p of warnings) this.opts.log.info(formatProblem(p));
    void this.events.report(errors, 'error');
    void this.events.report(warnings, 'warning');
  }

  status(): NodeAgentStatus {
    return {
      node: this.opts.config.nodeName,
      ready: this.ready,
      ...(this.firstSyncMs !== undefined ? { firstSyncMs: this.firstSyncMs } : {}),
      revision: this.agent.revision,
      endpoints: { enforced: this.interfaces.size, waitingForInterface: [...this.unresolved].sort() },
      watches: this.source.status(),
      kubernetesEvents: this.source.eventCounts(),
      rejectedObjects: this.rejected,
      invalidObjects: this.invalid,
      forbidden: this.forbidden(),
      policyErrors: this.compiler.errors().map(formatProblem),
      policyWarnings: this.compiler.warnings().map(formatProblem),
      sync: this.datapath.syncer.status(),
      mapPressure: this.datapath.pressure(),
      ...(this.opts.config.services ? { nodePorts: this.nodePorts.status() } : {}),
      ...(this.opts.memory ? { memorySettles: this.opts.memory.stats() } : {}),
    };
  }

  /** Stops watching and serving; programs and pins stay, so enforcement continues. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.opts.memory?.stop();
    this.health?.refresh();
    clearTimeout(this.retryTimer);
    clearInterval(this.nodePortTimer);
    await this.source.stop();
    await this.changes.drain();
    await this.obs?.close();
    await this.health?.close();
    await this.statusServer?.close();
    await this.offLoop.close();
    await this.agent.close();
  }
}
