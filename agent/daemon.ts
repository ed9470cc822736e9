/**
 * The weir agent: one pipeline from a source of cluster objects to the kernel.
 *
 *   source (lab manifests | Kubernetes informers)
 *     -> Store -> PolicyCompiler (identities, ipcache, policy entries) -> Enforcement (maps)
 *
 * It does not know where objects come from: a source calls `update()` with objects to upsert
 * and keys to delete, and the returned promise resolves once the datapath holds the result.
 * Observability hooks in through `events` (every store change and every realized revision)
 * and reads the store, the compiler's snapshot and the enforcement directly.
 */
import { EventEmitter } from 'node:events';
import { Store, objectKey, type KubeKind, type KubeObject, type StoreChange } from './store/index.js';
import { isEmptyDiff, type DesiredDiff, type DesiredState } from './desired.js';

/** The compiler as the agent drives it (agent/policy's PolicyEngine fits this shape). */
export interface PolicyCompiler {
  /** The store the compiler reads objects from (PolicyEngine's): the agent puts changes there, so objects are held once. */
  readonly store?: Store;
  apply(change: StoreChange): DesiredDiff;
  /** Many changes at once, each affected endpoint recomputed once. */
  applyAll?(changes: Iterable<StoreChange>): DesiredDiff;
  /**
   * Takes changes in without publishing: no diff is computed until the next `apply`/`applyAll`,
   * which publishes them with its own. For the changes before the first sync, whose diffs nobody
   * reads (the first sync realizes the whole snapshot).
   */
  ingestAll?(changes: Iterable<StoreChange>): void;
  snapshot(): DesiredState;
}

/**
 * The kernel side as the agent drives it. `resync` makes the kernel hold exactly `state`
 * (start-up, adoption after a restart); `apply` makes one increment real. Both resolve only
 * when the maps hold the result.
 */
export interface Enforcement {
  /** "ebpf" when programs and maps enforce; "none" when the lab runs without a datapath. */
  readonly kind: string;
  resync(state: DesiredState): Promise<void>;
  apply(diff: DesiredDiff): Promise<void>;
  close(): Promise<void>;
}

/** Enforces nothing: for running the lab's pods and probes without BPF. */
export class NoEnforcement implements Enforcement {
  readonly kind = 'none';
  async resync(): Promise<void> {}
  async apply(): Promise<void> {}
  async close(): Promise<void> {}
}

export interface ObjectRef {
  kind: KubeKind;
  /** "namespace/name" or "name". */
  key: string;
}

export interface RealizeResult {
  /** Revision now realized in the datapath (one per update() that changed anything). */
  revision: number;
  /** Store changes in this update (objects unchanged by it are not counted). */
  changes: number;
  /** Compiler time. */
  compileMs: number;
  /** From the call until the datapath held the result. */
  realizedMs: number;
}

export interface AgentEvents {
  change: [StoreChange];
  realized: [RealizeResult];
  failed: [Error];
}

export interface AgentOptions {
  nodeName: string;
  compiler: PolicyCompiler;
  enforcement: Enforcement;
  log?: (line: string) => void;
  /**
   * Until `start()`, updates only fill the store and the compiler (`ingestAll`): no diff is
   * published and the enforcement is not called, since `start()` realizes the whole snapshot.
   * For an enforcement that writes nothing before `start()` (the node agent's paused syncer).
   */
  deferUntilStart?: boolean;
}

export class Agent {
  readonly store: Store;
  readonly events = new EventEmitter<AgentEvents>();
  readonly nodeName: string;
  readonly compiler: PolicyCompiler;
  readonly enforcement: Enforcement;
  private revisionCounter = 0;
  private changeCounter = 0;
  private realized = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly startedAt = Date.now();
  private readonly log: (line: string) => void;
  /** Updates are only ingested (no diff, no enforcement) until `start()`; see `deferUntilStart`. */
  private deferring: boolean;
  /** Changes ingested and not published yet. */
  private unpublished = false;

  constructor(opts: AgentOptions) {
    this.nodeName = opts.nodeName;
    this.compiler = opts.compiler;
    this.store = opts.compiler.store ?? new Store();
    this.enforcement = opts.enforcement;
    this.log = opts.log ?? (() => undefined);
    // publishing what was ingested takes an applyAll (of nothing)
    this.deferring =
      opts.deferUntilStart === true && opts.compiler.ingestAll !== undefined && opts.compiler.applyAll !== undefined;
  }

  /**
   * Puts objects into the store and the compiler without touching the enforcement: for an agent
   * that adopts what a previous one pinned, so that `start()` reconciles the maps once, with
   * every object, instead of first with none.
   */
  preload(objects: KubeObject[]): void {
    const changes: StoreChange[] = [];
    for (const o of objects) {
      const c = this.store.upsert(o);
      if (c) changes.push(c);
    }
    if (this.compiler.applyAll) this.compiler.applyAll(changes);
    else for (const c of changes) this.compiler.apply(c);
  }

  /** Realizes the compiler's full state: start-up, or adoption of what a previous agent pinned. */
  async start(): Promise<void> {
    await this.serialize(async () => {
      this.deferring = false;
      // what was ingested before the start is published now, at once (its diff is the snapshot's)
      if (this.unpublished) {
        this.unpublished = false;
        this.compiler.applyAll!([]);
      }
      await this.enforcement.resync(this.compiler.snapshot());
      this.log(`agent started on node ${this.nodeName}, enforcement ${this.enforcement.kind}`);
    });
  }

  get revision(): number {
    return this.realized;
  }

  /** Moves with every store change, whether or not the datapath could realize it (caches of the store key on it). */
  get generation(): number {
    return this.changeCounter;
  }

  get uptimeMs(): number {
    return Date.now() - this.startedAt;
  }

  /** Upserts and deletes objects, then resolves once the datapath holds the result. */
  update(upserts: KubeObject[], deletes: ObjectRef[] = []): Promise<RealizeResult> {
    return this.serialize(async () => {
      const t0 = performance.now();
      const changes: StoreChange[] = [];
      for (const o of upserts) {
        const c = this.store.upsert(o);
        if (c) changes.push(c);
      }
      for (const d of deletes) {
        const c = this.store.delete(d.kind, d.key);
        if (c) changes.push(c);
      }
      if (changes.length > 0) this.changeCounter++;
      for (const c of changes) this.events.emit('change', c);
      const c0 = performance.now();
      let diffs: DesiredDiff[] = [];
      if (this.deferring) {
        this.compiler.ingestAll!(changes);
        if (changes.length > 0) this.unpublished = true;
      } else
        diffs = this.compiler.applyAll ? [this.compiler.applyAll(changes)] : changes.map((c) => this.compiler.apply(c));
      const compileMs = performance.now() - c0;
      for (const diff of diffs) if (!isEmptyDiff(diff)) await this.enforcement.apply(diff);
      if (changes.length > 0) this.realized = ++this.revisionCounter;
      const result: RealizeResult = {
        revision: this.realized,
        changes: changes.length,
        compileMs: round(compileMs),
        realizedMs: round(performance.now() - t0),
      };
      if (changes.length > 0) {
        this.events.emit('realized', result);
        this.log(`revision ${result.revision}: ${changes.length} change(s) realized in ${result.realizedMs} ms`);
      }
      return result;
    });
  }

  /** Deletes by object (as `kubectl delete -f` does). */
  remove(objects: KubeObject[]): Promise<RealizeResult> {
    return this.update(
      [],
      objects.map((o) => ({ kind: o.kind, key: objectKey(o) })),
    );
  }

  async close(): Promise<void> {
    await this.serialize(() => this.enforcement.close());
  }

  /** Runs one job at a time, in call order: the compiler and the maps see changes in sequence. */
  private serialize<T>(job: () => Promise<T>): Promise<T> {
    const next = this.queue.then(job, job);
    this.queue = next.catch((err: unknown) => {
      this.events.emit('failed', err instanceof Error ? err : new Error(String(err)));
    });
    return next;
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
