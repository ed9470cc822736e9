/**
 * weir as a dataplane of the side-by-side bench: the real datapath object (pinned under the
 * bench's own root), its programs attached to the node namespace's pod veths, and the
 * Syncer writing the rule set into its maps. Programming time is the Syncer's map
 * writes for the whole desired state; a changed rule is one DesiredDiff.
 * Three planes share the object: `weir` (allowed flows on, the default), `weir-noflows` (allowed
 * flows off) and `empty` (the object's empty program on the same hooks, attached the same way: the
 * floor of any tc dataplane). Each reads its programs' run time (bpf_stats).
 */
import { existsSync, rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Datapath, defaultObjectPath } from '../../../agent/datapath/datapath.js';
import { SyncDriver, type DriverStats as ReconcileStats } from '../../kernel/sync-driver.js';
import { withLibbpfLog } from '../../../maps/libbpf.js';
import { tcAttach } from '../../../maps/tc.js';
import { hooksProgramTime, type ProgramTime } from '../bpf-stats.js';
import type { Dataplane } from './dataplane.js';
import { run } from './exec.js';
import { changeOneRule, type RuleSet } from './rules.js';
import type { Topology } from './topology.js';
import { desiredState, endpointKey, ruleChangeDiff } from './weir-state.js';

export interface WeirOptions {
  topo: Topology;
  targetPod: string;
  /** bpffs directory for the bench's own maps and programs (removed at close). */
  pinRoot: string;
}

/**
 * Detaching leaves the clsact qdisc on the veth (with no filter); it goes too, so that the modes
 * measured next (no filtering among them) run on veths as they were created.
 */
async function removeClsact(topo: Topology): Promise<void> {
  for (const p of topo.pods)
    await run('tc', ['-n', topo.node, 'qdisc', 'del', 'dev', p.hostIf, 'clsact'], { timeoutMs: 10_000 });
}

function check(stats: ReconcileStats, what: string): void {
  if (stats.errors.length > 0) throw new Error(`weir ${what}: ${stats.errors.join('; ')}`);
  if (stats.pending.length > 0)
    throw new Error(`weir ${what}: endpoints without an interface: ${stats.pending.join(', ')}`);
}

/** Returns weir's dataplanes (weir, weir-noflows, empty), or a note saying why they are not part of this run. */
export async function weirDataplane(opts: WeirOptions): Promise<{ planes: Dataplane[]; note: string }> {
  const objectPath = defaultObjectPath();
  if (!existsSync(objectPath)) {
    return { planes: [], note: `_weir is not measured in this run: ${objectPath} is missing (run make build)._` };
  }
  const { topo } = opts;
  const target = topo.pod(opts.targetPod);
  const netns = `/var/run/netns/${topo.node}`;
  rmSync(opts.pinRoot, { recursive: true, force: true });
  const dp = Datapath.open({ pinRoot: opts.pinRoot, objectPath });
  // flow events are read and decoded as the agent reads them: a ring nobody drains would fill
  // within a second and let every later event take the cheaper lost-event path
  let eventsRead = 0;
  const reader = dp.onFlowEvents(
    (events) => {
      eventsRead += events.length;
    },
    { pollIntervalMs: 20 },
  );
  const ifindex = new Map(topo.pods.map((p) => [endpointKey(p), p.hostIfindex]));
  const syncer = new SyncDriver(dp.syncerMaps(), (key) => ifindex.get(key));
  syncer.setNodeAddresses(topo.pods.map((p) => p.gateway));
  let current: RuleSet | undefined;
  const empty = { endpoints: new Map(), ipcache: new Map() };
  const hook = { ifindex: topo.pods[0]!.hostIfindex, netns };
  const programTime = (): Promise<ProgramTime> =>
    hooksProgramTime(hook, ['ingress', 'egress'], `the bench's ${topo.pods[0]!.hostIf}`);
  const weirPlane = (mode: 'weir' | 'weir-noflows'): Dataplane => ({
    mode,
    async enable(set) {
      dp.configure({ hostAllow: true, allowedFlows: mode === 'weir' });
      // libbpf logs that clsact already exists on re-attach: expected, kept out of the bench output.
      withLibbpfLog(() => topo.pods.forEach((p) => dp.attach({ ifindex: p.hostIfindex, netns })));
      const state = desiredState(set, topo.pods, target);
      const t0 = performance.now();
      const stats = syncer.resyncTo(state);
      const ms = performance.now() - t0;
      check(stats, 'programming');
      current = set;
      return ms;
    },
    async changeOne() {
      if (!current) throw new Error('changeOne() before enable()');
      const { set, changed } = changeOneRule(current);
      const diff = ruleChangeDiff(current, set, changed, target);
      const t0 = performance.now();
      const stats = syncer.syncDiff(diff);
      const ms = performance.now() - t0;
      check(stats, 'rule change');
      current = set;
      return ms;
    },
    async disable() {
      withLibbpfLog(() => topo.pods.forEach((p) => dp.detach({ ifindex: p.hostIfindex, netns })));
      check(syncer.resyncTo(empty), 'clearing');
      current = undefined;
      await removeClsact(topo);
    },
    close,
    programTime,
    eventsRead: () => eventsRead,
  });
  const noop = dp.programs.get('noop');
  if (noop === undefined) throw new Error(`${objectPath} has no program "noop": rebuild it (make build)`);
  const emptyPlane: Dataplane = {
    mode: 'empty',
    async enable() {
      withLibbpfLog(() =>
        topo.pods.forEach((p) => {
          tcAttach({ ifindex: p.hostIfindex, netns }, 'ingress', noop);
          tcAttach({ ifindex: p.hostIfindex, netns }, 'egress', noop);
        }),
      );
      return 0;
    },
    changeOne: () => Promise.resolve(0),
    async disable() {
      withLibbpfLog(() => topo.pods.forEach((p) => dp.detach({ ifindex: p.hostIfindex, netns })));
      await removeClsact(topo);
    },
    close,
    programTime,
  };
  let closed = false;
  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    for (const p of topo.pods) {
      try {
        withLibbpfLog(() => dp.detach({ ifindex: p.hostIfindex, netns }));
      } catch {
        // the interface is already gone with its namespace
      }
    }
    reader.close();
    dp.close();
    rmSync(opts.pinRoot, { recursive: true, force: true });
  }
  return { planes: [weirPlane('weir'), weirPlane('weir-noflows'), emptyPlane], note: '' };
}
