/**
 * The side-by-side bench compares like with like: its Calico-style iptables rules (with ipsets),
 * its nftables verdict map and weir's maps, rendered from one rule set, let the allowed pod through and keep another pod out,
 * still do after one rule changes, and leave nothing behind when switched off (the next mode
 * starts on a clean node). Real namespaces, veths and TCP; needs root (CI runs it as root).
 *
 * @requires root
 */
import { createTopology, type Topology } from './sidebyside/topology.js';
import { iptablesDataplane, type Dataplane } from './sidebyside/dataplane.js';
import { buildRuleSet, changeOneRule } from './sidebyside/rules.js';
import { canConnect, connrateBinary } from './sidebyside/traffic.js';
import { startServer, type Server } from './sidebyside/exec.js';
import { weirDataplane } from './sidebyside/weir.js';
import { nftablesDataplane, renderTable } from './sidebyside/nftables.js';
import { countRules, renderIpsets, renderRuleset } from './sidebyside/calico-iptables.js';

const PORT = 11113;
let topo: Topology;
let server: Server | undefined;
let connrate: string;
const planes: Dataplane[] = [];

beforeAll(async () => {
  topo = await createTopology({ prefix: 'wbn-t', octet: 250, pods: ['a', 'b', 'c'] });
  connrate = await connrateBinary('build/bench');
  server = await startServer(topo.pod('b').netns, connrate, ['server', topo.pod('b').ip, String(PORT)], {
    pattern: /listening/,
  });
}, 60_000);

afterAll(async () => {
  await server?.stop();
  for (const p of planes) await p.close().catch(() => undefined);
  await topo?.destroy();
});

const ruleSet = (n: number) =>
  buildRuleSet({
    rules: n,
    rulesPerPolicy: 10,
    octet: 250,
    client: { ip: topo.pod('a').ip, identity: 256 },
    benchPorts: [PORT],
  });

describe('side-by-side dataplanes', () => {
  it('renders Calico-style chains: one policy chain per 10 rules, two iptables rules per policy rule', () => {
    const text = renderRuleset(ruleSet(100), { pods: topo.pods, target: topo.pod('b'), ifaceWildcard: 'wbn-t-+' });
    expect(text.match(/^:cali-pi-_bench-\d+ /gm)).toHaveLength(10);
    expect(text.match(/-j MARK --set-xmark 0x10000\/0x10000$/gm)?.length).toBe(100 + 2); // rules + two profile chains
    expect(countRules(text)).toBeGreaterThan(200);
    // peers by ipset, as Calico writes selectors: one set per rule's peer
    expect(text.match(/-m set --match-set cali40s:bench-\d+-\d+ src/g)).toHaveLength(100);
    expect(renderIpsets(ruleSet(100)).match(/^create /gm)).toHaveLength(100);
  });

  it('renders nftables with one verdict map: one element per peer and port, one lookup per connection', () => {
    const text = renderTable(ruleSet(100), topo.pod('b'));
    expect(text.match(/ : accept/g)).toHaveLength(100);
    expect(text.match(/vmap @/g)).toHaveLength(1);
  });

  it('without filtering, every pod reaches the target', async () => {
    expect(await canConnect(topo.pod('c'), topo.pod('b'), PORT, connrate)).toBe(true);
  });

  for (const mode of ['iptables', 'nftables', 'weir'] as const) {
    it(`${mode}: the allowed pod gets in, another pod does not, before and after one rule changes; off again, all get in`, async () => {
      let plane: Dataplane;
      if (mode === 'iptables') plane = iptablesDataplane({ topo, targetPod: 'b', backend: 'nft' });
      else if (mode === 'nftables') plane = nftablesDataplane({ topo, targetPod: 'b' });
      else {
        const w = await weirDataplane({ topo, targetPod: 'b', pinRoot: `/sys/fs/bpf/wbn-t-${process.pid}` });
        const p = w.planes.find((x) => x.mode === 'weir');
        if (!p) throw new Error(w.note);
        plane = p;
      }
      planes.push(plane);
      const [a, b, c] = [topo.pod('a'), topo.pod('b'), topo.pod('c')];
      const set = ruleSet(100);
      expect(changeOneRule(set).set.rules.filter((r, i) => r.ports[0] !== set.rules[i]!.ports[0])).toHaveLength(1);
      expect(await plane.enable(set)).toBeGreaterThan(0);
      expect(await canConnect(a, b, PORT, connrate)).toBe(true);
      expect(await canConnect(c, b, PORT, connrate)).toBe(false);
      expect(await plane.changeOne()).toBeGreaterThan(0);
      expect(await canConnect(a, b, PORT, connrate)).toBe(true);
      expect(await canConnect(c, b, PORT, connrate)).toBe(false);
      await plane.disable();
      expect(await canConnect(c, b, PORT, connrate)).toBe(true);
    }, 60_000);
  }
});
