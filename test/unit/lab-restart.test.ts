/**
 * What `weir lab restart-agent` calls widened (agent/lab/restart.ts): allow entries are compared
 * by the label set their identity stands for, as each agent numbered it. Two label sets whose
 * hashes collide may get their numbers the other way round after a restart; that is no
 * widening, while an entry whose number now stands for another label set is.
 */
import { compareSnapshots, withIdentityNames, type DatapathSnapshot } from '../../agent/lab/restart.js';

const A = ['app=a', 'io.kubernetes.pod.namespace=t'];
const B = ['app=b', 'io.kubernetes.pod.namespace=t'];
const C = ['app=c', 'io.kubernetes.pod.namespace=t'];

function snapshot(entries: string[]): DatapathSnapshot {
  return {
    endpoints: new Map([[7, { ingressIsolated: true, egressIsolated: false, entries: new Set(entries) }]]),
    connections: new Set(),
  };
}

describe('restart-agent widening check', () => {
  const before = withIdentityNames(
    snapshot(['ingress identity=300 TCP/80', 'ingress identity=16777300 TCP/443', 'ingress any UDP/53']),
    new Map([
      [300, B],
      [301, A],
    ]),
  );

  it('two label sets swapping numbers widens nothing', () => {
    const after = withIdentityNames(
      snapshot(['ingress identity=301 TCP/80', 'ingress identity=16777300 TCP/443', 'ingress any UDP/53']),
      new Map([
        [300, A],
        [301, B],
      ]),
    );
    expect(compareSnapshots(before, after).widened).toEqual([]);
  });

  it('the same number now standing for another label set is a widening, and is named by its labels', () => {
    const after = withIdentityNames(
      snapshot(['ingress identity=300 TCP/80', 'ingress identity=16777300 TCP/443', 'ingress any UDP/53']),
      new Map([
        [300, A],
        [301, B],
      ]),
    );
    expect(compareSnapshots(before, after).widened).toEqual([
      'ifindex 7: new entry ingress identity={app=a,io.kubernetes.pod.namespace=t} TCP/80',
    ]);
  });

  it('numbers no agent named are compared as numbers', () => {
    const after = withIdentityNames(
      snapshot(['ingress identity=300 TCP/80', 'ingress identity=16777301 TCP/443']),
      new Map([[300, B]]),
    );
    expect(compareSnapshots(before, after).widened).toEqual(['ifindex 7: new entry ingress identity=16777301 TCP/443']);
    expect(
      withIdentityNames(snapshot(['ingress identity=302 TCP/1']), new Map([[302, C]])).endpoints.get(7)!.entries,
    ).toEqual(new Set(['ingress identity={app=c,io.kubernetes.pod.namespace=t} TCP/1']));
  });
});
