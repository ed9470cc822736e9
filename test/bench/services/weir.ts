/**
 * weir as the Services bench's translator: the real datapath object pinned under the bench's own
 * root, its programs on both pods' node-side veths, and the Syncer writing both endpoints (not
 * isolated), their ipcache entries and every Service of the catalog as frontends
 * (`DesiredState.services`). Programming time is the Syncer's writes for the whole state.
 * Two planes share the datapath: `weir` (the client connects to the ClusterIP) and `weir-pod` (the
 * same datapath and Services, the client connecting to the pod's own address: nothing translated).
 * Each can read the run time of weir's two programs (`bpf_stats_enabled`, in a pass of its own).
 */
import { existsSync, rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Datapath, defaultObjectPath } from '../../../agent/datapath/datapath.js';
import {
  frontendKey,
  type DesiredState,
  type EndpointState,
  type IpcacheEntry,
  type ServiceFrontend,
} from '../../../agent/desired.js';
import { withLibbpfLog } from '../../../maps/libbpf.js';
import { hooksProgramTime, type ProgramTime } from '../bpf-stats.js';
import { SyncDriver } from '../../kernel/sync-driver.js';
import type { ServiceMode, ServicePlane } from '../services.js';
import type { Topology } from '../sidebyside/topology.js';
import type { Catalog } from './catalog.js';

const NAMESPACE = 'bench';
const FIRST_IDENTITY = 256;

function frontends(c: Catalog): Map<string, ServiceFrontend> {
  const out = new Map<string, ServiceFrontend>();
  for (const f of c.frontends) {
    const fe: ServiceFrontend = {
      service: f.name.slice(0, f.name.lastIndexOf(':')),
      scope: 'clusterIP',
      address: f.vip,
      port: f.port,
      protocol: f.protocol,
      portName: '',
      affinityTimeoutSeconds: 0,
      externalLocal: false,
      backends: f.backends.map((b) => ({ ip: b.ip, port: b.port, ready: true, serving: true, terminating: false })),
    };
    out.set(frontendKey(fe), fe);
  }
  return out;
}

function state(topo: Topology, c: Catalog | undefined): DesiredState {
  const endpoints = new Map<string, EndpointState>();
  const ipcache = new Map<string, IpcacheEntry>();
  topo.pods.forEach((p, i) => {
    const key = `${NAMESPACE}/${p.name}`;
    const identity = FIRST_IDENTITY + i;
    endpoints.set(key, {
      key,
      namespace: NAMESPACE,
      name: p.name,
      ips: [p.ip],
      identity,
      ingressIsolated: false,
      egressIsolated: false,
      entries: [],
    });
    ipcache.set(`${p.ip}/32`, { cidr: `${p.ip}/32`, identity });
  });
  return { endpoints, ipcache, services: c ? frontends(c) : new Map() };
}

export async function weirServicePlanes(opts: {
  topo: Topology;
  pinRoot: string;
}): Promise<{ planes: ServicePlane[]; note: string }> {
  const objectPath = defaultObjectPath();
  if (!existsSync(objectPath))
    return { planes: [], note: `_weir is not measured in this run: ${objectPath} is missing (run make build)._` };
  const { topo } = opts;
  const netns = `/var/run/netns/${topo.node}`;
  rmSync(opts.pinRoot, { recursive: true, force: true });
  const dp = Datapath.open({ pinRoot: opts.pinRoot, objectPath });
  const ifindex = new Map(topo.pods.map((p) => [`${NAMESPACE}/${p.name}`, p.hostIfindex]));
  const syncer = new SyncDriver(dp.syncerMaps(), (key) => ifindex.get(key));
  syncer.setNodeAddresses(topo.pods.map((p) => p.gateway));
  const check = (errors: string[], what: string): void => {
    if (errors.length > 0) throw new Error(`weir ${what}: ${errors.join('; ')}`);
  };
  let closed = false;
  const hook = topo.pods[0]!;
  /** The run time of from_pod and to_pod (the same two programs are on every pod's veth). */
  const programTime = (): Promise<ProgramTime> =>
    hooksProgramTime({ ifindex: hook.hostIfindex, netns }, ['ingress', 'egress'], `weir on ${hook.hostIf}`);
  const plane = (mode: ServiceMode): ServicePlane => ({
    mode,
    async enable(c) {
      withLibbpfLog(() => topo.pods.forEach((p) => dp.attach({ ifindex: p.hostIfindex, netns })));
      const t0 = performance.now();
      const stats = syncer.resyncTo(state(topo, c));
      const ms = performance.now() - t0;
      check(stats.errors, 'programming the Services');
      return ms;
    },
    async disable() {
      withLibbpfLog(() => topo.pods.forEach((p) => dp.detach({ ifindex: p.hostIfindex, netns })));
      check(syncer.resyncTo(state(topo, undefined)).errors, 'clearing');
    },
    programTime,
    async close() {
      if (closed) return;
      closed = true;
      for (const p of topo.pods) {
        try {
          withLibbpfLog(() => dp.detach({ ifindex: p.hostIfindex, netns }));
        } catch {
          // the interface is already gone with its namespace
        }
      }
      dp.close();
      rmSync(opts.pinRoot, { recursive: true, force: true });
    },
  });
  return { planes: [plane('weir'), plane('weir-pod')], note: '' };
}
