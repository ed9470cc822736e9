/**
 * The lab's agent daemon: the agent pipeline with the lab as its source, the lab's pods as its
 * interfaces, and the control API on `<runDir>/agent.sock`. Started in the background by
 * `weir lab up`; ended by `weir lab down` (or SIGTERM), which removes the lab's pods.
 */
import { join } from 'node:path';
import type { Server } from 'node:http';
import { Agent, type Enforcement } from '../daemon.js';
import { PolicyEngine } from '../policy/engine.js';
import { formatProblem, type PolicyProblem } from '../policy/compiled.js';
import type { KubeObject } from '../store/index.js';
import { serveControl } from '../control/server.js';
import { LabSource } from '../sources/lab.js';
import type { LabConfig } from './config.js';
import { createLabEnforcement } from './enforcement.js';
import { LabRuntime, readState, type LabDaemonOptions } from './runtime.js';
import { DatapathEnforcement, type MapPressure } from '../enforcement.js';
import type { SyncerStatus } from '../datapath/syncer.js';
import { DEFAULT_MAX_PODS } from '../metrics/metrics.js';
import { identityViews, podViews, policyViews, serviceViews } from './views.js';
import { withServices } from '../services/index.js';
import { startLabObservability } from './observe.js';
import type { LabObservability } from './observe.js';

export function controlSocketPath(c: LabConfig): string {
  return join(c.runDir, 'agent.sock');
}

export interface LabStatus {
  node: string;
  pid: number;
  enforcement: string;
  /** Revision realized in the datapath. */
  revision: number;
  uptimeMs: number;
  pods: number;
  namespaces: number;
  policies: number;
  services: number;
  pinRoot: string;
  runDir: string;
  /** Where `weir observe` reads flows. */
  flowApi: string[];
  metricsUrl?: string;
  /** The default metrics port, when another listener had it and the agent chose another. */
  metricsPortTaken?: number;
  /** Whether this agent adopted a running lab (restart) instead of preparing a new one. */
  adopted: boolean;
  /** The syncer's queue: keys failing (previous state kept, retried with backoff), drift repaired. */
  sync?: SyncerStatus;
  /** Maps at or above the pressure threshold. */
  mapPressure?: MapPressure[];
}

export interface LabService {
  agent: Agent;
  source: LabSource;
  runtime: LabRuntime;
  enforcement: Enforcement;
  observability: LabObservability;
  server: Server;
  stop(): Promise<void>;
}

function objectsOf(body: unknown): KubeObject[] {
  const objs = (body as { objects?: unknown } | undefined)?.objects;
  if (!Array.isArray(objs)) throw new Error('request needs {"objects": [...]}');
  return objs as KubeObject[];
}

export interface LabServiceOptions extends LabDaemonOptions {
  log: (line: string) => void;
  /**
   * Take over the running lab recorded in the run dir (pods, objects, pins) instead of cleaning
   * it: the pinned datapath keeps enforcing until this agent has reconciled it with every object.
   */
  adopt?: boolean;
}

export async function startLabService(config: LabConfig, opts: LabServiceOptions): Promise<LabService> {
  const runtime = new LabRuntime(config);
  const previous = opts.adopt ? readState(config) : undefined;
  if (opts.adopt && !previous)
    throw new Error(`no lab to adopt: ${config.runDir} holds no state; start one with \`weir lab up\``);
  if (previous) await runtime.adopt(previous, opts.log);
  else await runtime.prepare();
  const enforcement = await createLabEnforcement(
    {
      config,
      ifindexOf: (key) => runtime.get(key)?.ifindex,
      log: opts.log,
      ...(opts.mapMax ? { mapMax: opts.mapMax } : {}),
      ...(opts.resyncIntervalMs !== undefined ? { resyncIntervalMs: opts.resyncIntervalMs } : {}),
    },
    opts.enforce,
  );
  const compiler = new PolicyEngine({ nodeName: config.nodeName, clusterPodCIDRs: [config.cidr4, config.cidr6] });
  const agent = new Agent({
    nodeName: config.nodeName,
    compiler: withServices(compiler, config.nodeName),
    enforcement,
    log: opts.log,
  });
  // Adopting: every recorded object first, then one reconcile of the pinned maps with all of them.
  if (previous) agent.preload(runtime.objects);
  await agent.start();
  if (previous) opts.log(`adopted the lab: ${runtime.list().length} pods, ${runtime.objects.length} objects`);
  const observability = await startLabObservability(config, agent, compiler, runtime, opts.log, {
    ...(opts.metricsPort !== undefined ? { port: opts.metricsPort } : {}),
    ...(opts.podMetrics ? { podMetrics: { enabled: true, maxPods: opts.podMetricsMaxPods ?? DEFAULT_MAX_PODS } } : {}),
  });
  const source = new LabSource(runtime, agent, (keys) => {
    const wanted = new Set(keys);
    const mine = (ps: PolicyProblem[]): string[] => ps.filter((p) => wanted.has(p.policy)).map(formatProblem);
    return { errors: mine(compiler.errors()), warnings: mine(compiler.warnings()) };
  });
  let stopping: Promise<void> | undefined;
  const status = (): LabStatus => ({
    node: config.nodeName,
    pid: process.pid,
    enforcement: enforcement.kind,
    revision: agent.revision,
    uptimeMs: agent.uptimeMs,
    pods: agent.store.size('Pod'),
    namespaces: agent.store.size('Namespace'),
    policies: agent.store.size('NetworkPolicy'),
    services: agent.store.size('Service'),
    pinRoot: config.pinRoot,
    runDir: config.runDir,
    flowApi: observability.flowApi,
    ...(observability.metricsUrl ? { metricsUrl: observability.metricsUrl } : {}),
    ...(observability.metricsPortTaken !== undefined ? { metricsPortTaken: observability.metricsPortTaken } : {}),
    adopted: previous !== undefined,
    ...(enforcement instanceof DatapathEnforcement
      ? { sync: enforcement.syncer.status(), mapPressure: enforcement.pressure() }
      : {}),
  });
  const server = await serveControl(controlSocketPath(config), [
    { method: 'GET', path: '/status', handler: async () => status() },
    { method: 'GET', path: '/pods', handler: async () => podViews(agent, runtime.list()) },
    { method: 'GET', path: '/policies', handler: async () => policyViews(agent) },
    { method: 'GET', path: '/identities', handler: async () => identityViews(agent, compiler) },
    { method: 'GET', path: '/services', handler: async () => serviceViews(agent) },
    { method: 'POST', path: '/apply', handler: (body, progress) => source.apply(objectsOf(body), progress) },
    { method: 'POST', path: '/delete', handler: (body, progress) => source.delete(objectsOf(body), progress) },
    {
      method: 'POST',
      path: '/shutdown',
      handler: async () => {
        await service.stop();
        setImmediate(() => process.exit(0));
        return { stopped: true };
      },
    },
  ]);
  const options: LabDaemonOptions = {
    enforce: opts.enforce,
    ...(opts.metricsPort !== undefined ? { metricsPort: opts.metricsPort } : {}),
    ...(opts.podMetrics !== undefined ? { podMetrics: opts.podMetrics } : {}),
    ...(opts.podMetricsMaxPods !== undefined ? { podMetricsMaxPods: opts.podMetricsMaxPods } : {}),
    ...(opts.mapMax ? { mapMax: opts.mapMax } : {}),
    ...(opts.resyncIntervalMs !== undefined ? { resyncIntervalMs: opts.resyncIntervalMs } : {}),
  };
  runtime.daemon = { pid: process.pid, socket: controlSocketPath(config), options };
  runtime.save();
  const service: LabService = {
    agent,
    source,
    runtime,
    enforcement,
    observability,
    server,
    stop: () => {
      stopping ??= (async () => {
        server.close();
        await observability.close();
        await agent.close();
        await runtime.shutdown();
        opts.log('lab agent stopped');
      })();
      return stopping;
    },
  };
  return service;
}
