/** Every example under examples/ loads and compiles without errors (no kernel needed). */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadManifests } from '../../agent/store/index.js';
import { PolicyEngine } from '../../agent/policy/engine.js';
import { formatProblem } from '../../agent/policy/compiled.js';

const dirs = readdirSync('examples')
  .map((d) => join('examples', d))
  .filter((d) => statSync(d).isDirectory());

describe('examples', () => {
  test('there is one folder per documented pattern', () => {
    expect(dirs.map((d) => d.slice('examples/'.length)).sort()).toEqual([
      'allow-all',
      'default-deny',
      'e2e-model',
      'test-network-policy',
      'three-tier',
      'two-teams',
    ]);
  });

  test.each(dirs)('%s loads and compiles without errors', (dir) => {
    const objects = loadManifests([dir]);
    expect(objects.length).toBeGreaterThan(0);
    const engine = new PolicyEngine();
    engine.upsertAll(objects);
    expect(engine.errors().map(formatProblem)).toEqual([]);
  });

  test('the e2e model has 3 namespaces and 9 pods serving 80 and 81 on TCP, UDP and SCTP', () => {
    const objects = loadManifests(['examples/e2e-model/cluster.yaml']);
    const pods = objects.filter((o) => o.kind === 'Pod');
    expect(objects.filter((o) => o.kind === 'Namespace').map((n) => n.kind === 'Namespace' && n.labels.ns)).toEqual([
      'x',
      'y',
      'z',
    ]);
    expect(pods).toHaveLength(9);
    for (const p of pods) {
      if (p.kind !== 'Pod') continue;
      expect(p.ports.map((c) => c.name).sort()).toEqual([
        'serve-80-sctp',
        'serve-80-tcp',
        'serve-80-udp',
        'serve-81-sctp',
        'serve-81-tcp',
        'serve-81-udp',
      ]);
    }
  });
});
