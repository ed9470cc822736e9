/**
 * Differential test: for thousands of random clusters, the verdict `explain` gives (rules
 * evaluated directly) equals the verdict of the datapath's lookup simulated over the compiled
 * state of each node: the sender's egress on its node, the receiver's ingress on its node,
 * each with the peer's identity from that node's ipcache (longest prefix on the peer's IP).
 * Also from and to addresses that are not pods', where only the pod's side is enforced.
 */
import { PolicyEngine } from '../../../agent/policy/engine.js';
import { explain, formatExplanation } from '../../../agent/policy/explain.js';
import { entryAllows } from '../../../agent/policy/simulate.js';
import { NODES, POD_CIDRS, PROTOCOLS, QUERY_PORTS, Rng, randomCluster } from './random.js';

const CLUSTERS = 2000;
/** Inside and outside the named prefixes and excepts, node addresses, unknown pod-network addresses. */
const EXTERNAL = [
  '8.8.8.8',
  '10.9.9.9',
  '203.0.113.7',
  '198.51.100.1',
  '2001:db8::1',
  '192.168.0.1',
  '192.168.0.2',
  '10.244.150.5',
  '10.244.100.9',
  'fd00:10:244::ffff:1',
];

describe('explain equals the simulated datapath over compiled entries', () => {
  it(`agrees on every pod pair, port and protocol of ${CLUSTERS} random clusters`, () => {
    let checked = 0;
    let externalChecked = 0;
    let externalDenied = 0;
    let allowed = 0;
    let denied = 0;
    for (let seed = 1; seed <= CLUSTERS; seed++) {
      const r = new Rng(seed);
      const { objects } = randomCluster(r);
      const offline = new PolicyEngine({ clusterPodCIDRs: POD_CIDRS });
      offline.upsertAll(objects);
      const nodes = new Map(NODES.map((n) => [n, new PolicyEngine({ nodeName: n, clusterPodCIDRs: POD_CIDRS })]));
      for (const e of nodes.values()) e.upsertAll(objects);
      const states = new Map([...nodes].map(([n, e]) => [n, e.snapshot()]));
      // hostNetwork pods included: they carry the node's address, so peers see host or remote-node.
      const pods = offline.listPods();
      // Addresses outside the pods: ipBlocks, excepts, nodes, the pod network, the world.
      for (const pod of pods) {
        if (pod.hostNetwork) continue;
        const key = `${pod.namespace}/${pod.name}`;
        const ep = states.get(pod.nodeName!)!.endpoints.get(key);
        const node = nodes.get(pod.nodeName!)!;
        for (let n = 0; n < 3; n++) {
          const ip = r.pick(EXTERNAL);
          const port = r.pick(QUERY_PORTS);
          const protocol = r.pick(PROTOCOLS);
          const id = node.resolveIP(ip)!;
          for (const [from, to, direction] of [
            [key, ip, 'egress'],
            [ip, key, 'ingress'],
          ] as const) {
            const sim = ep ? entryAllows(ep, direction, id, protocol, port) : true;
            const ex = explain(offline, { from, to, port, protocol });
            if (ex.allowed !== sim)
              throw new Error(
                `seed ${seed}: explain says ${ex.allowed}, datapath says ${sim}\n${formatExplanation(ex)}`,
              );
            externalChecked++;
            if (!sim) externalDenied++;
          }
        }
      }
      for (const src of pods) {
        for (const dst of pods) {
          if (src === dst) continue;
          const srcNode = nodes.get(src.nodeName!)!;
          const dstNode = nodes.get(dst.nodeName!)!;
          for (let q = 0; q < 3; q++) {
            const port = r.pick(QUERY_PORTS);
            const protocol = r.pick(PROTOCOLS);
            const family = r.chance(0.5) && src.ips.length > 1 && dst.ips.length > 1 ? 1 : 0;
            const srcEp = states.get(src.nodeName!)!.endpoints.get(`${src.namespace}/${src.name}`);
            const dstEp = states.get(dst.nodeName!)!.endpoints.get(`${dst.namespace}/${dst.name}`);
            const dstId = srcNode.resolveIP(dst.ips[family]!)!;
            const srcId = dstNode.resolveIP(src.ips[family]!)!;
            const sim =
              (srcEp ? entryAllows(srcEp, 'egress', dstId, protocol, port) : true) &&
              (dstEp ? entryAllows(dstEp, 'ingress', srcId, protocol, port) : true);
            const ex = explain(offline, {
              from: `${src.namespace}/${src.name}`,
              to: `${dst.namespace}/${dst.name}`,
              port,
              protocol,
            });
            if (ex.allowed !== sim) {
              throw new Error(
                `seed ${seed}: explain says ${ex.allowed}, datapath says ${sim}\n${formatExplanation(ex)}\n${JSON.stringify(
                  objects.filter((o) => o.kind === 'NetworkPolicy'),
                  null,
                  1,
                )}`,
              );
            }
            checked++;
            if (sim) allowed++;
            else denied++;
          }
        }
      }
    }
    expect(externalChecked).toBeGreaterThan(30_000);
    expect(externalDenied).toBeGreaterThan(externalChecked / 10);
    expect(externalDenied).toBeLessThan(externalChecked * 0.9);
    // The generator must exercise both verdicts substantially, or this test proves little.
    expect(checked).toBeGreaterThan(100_000);
    expect(denied).toBeGreaterThan(checked / 10);
    expect(allowed).toBeGreaterThan(checked / 10);
  });
});
