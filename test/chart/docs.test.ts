/**
 * The chart's documentation and its values agree: every key of values.yaml has a row in
 * charts/weir/README.md and every row names a key of values.yaml; values.schema.json describes
 * exactly the keys values.yaml sets; every value docs/install.md mentions exists.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

type Schema = {
  $ref?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
  definitions?: Record<string, Schema>;
};

const values = parse(readFileSync('charts/weir/values.yaml', 'utf8')) as Record<string, unknown>;
const schema = JSON.parse(readFileSync('charts/weir/values.schema.json', 'utf8')) as Schema;
const readme = readFileSync('charts/weir/README.md', 'utf8');
const install = readFileSync('docs/install.md', 'utf8');

const resolveRef = (s: Schema | undefined): Schema | undefined =>
  s?.$ref ? schema.definitions![s.$ref.replace('#/definitions/', '')] : s;
const isMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * The documented keys of values.yaml: a mapping whose schema lists its properties is walked into,
 * anything else (scalars, lists, free-form maps such as resources or nodeSelector) is one key.
 */
function valueKeys(v: Record<string, unknown>, s: Schema | undefined, prefix = ''): string[] {
  return Object.entries(v).flatMap(([k, child]) => {
    const path = `${prefix}${k}`;
    const cs = resolveRef(s?.properties?.[k]);
    if (isMap(child) && Object.keys(child).length > 0 && cs?.properties) return valueKeys(child, cs, `${path}.`);
    return [path];
  });
}

/** Keys the schema defines under closed objects (additionalProperties: false), as dotted paths. */
function schemaKeys(s: Schema, prefix = ''): string[] {
  return Object.entries(s.properties ?? {}).flatMap(([k, child]) => {
    const c = resolveRef(child)!;
    const path = `${prefix}${k}`;
    return c.properties && c.additionalProperties === false ? schemaKeys(c, `${path}.`) : [path];
  });
}

/** The first cell of every row of the README's values table. */
function readmeKeys(): string[] {
  const table = readme.slice(readme.indexOf('## Values'));
  return [...table.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!);
}

/** Is `path` a key of values.yaml, or inside one? */
function exists(path: string): boolean {
  let cur: unknown = values;
  for (const part of path.split('.')) {
    if (!isMap(cur) || !(part in cur)) return false;
    cur = cur[part];
  }
  return true;
}

describe('chart documentation', () => {
  const keys = valueKeys(values, schema);

  it('the README documents every key of values.yaml, and only those, once each', () => {
    const documented = readmeKeys();
    expect(keys.length).toBeGreaterThan(50);
    expect(keys.filter((k) => !documented.includes(k))).toEqual([]);
    expect(documented.filter((k) => !keys.includes(k))).toEqual([]);
    expect(documented.filter((k, i) => documented.indexOf(k) !== i)).toEqual([]);
    // podMetrics, global and the ServiceMonitor relabelings are among them.
    expect(documented).toEqual(
      expect.arrayContaining([
        'global',
        'image.digest',
        'podMetrics.enabled',
        'podMetrics.maxPods',
        'podSecurityContext',
        'extraVolumes',
        'extraVolumeMounts',
        'metrics.serviceMonitor.relabelings',
        'metrics.serviceMonitor.metricRelabelings',
      ]),
    );
  });

  it('the schema describes exactly the keys values.yaml sets', () => {
    const described = schemaKeys(schema);
    const set = new Set(keys.flatMap((k) => k.split('.').map((_, i, parts) => parts.slice(0, i + 1).join('.'))));
    expect(described.filter((k) => !set.has(k))).toEqual([]);
    expect(keys.filter((k) => !described.some((d) => k === d || k.startsWith(`${d}.`)))).toEqual([]);
  });

  it('every value docs/install.md mentions exists in values.yaml', () => {
    const top = Object.keys(values);
    const mentioned = [
      ...[...install.matchAll(/`([a-zA-Z]+(?:\.[a-zA-Z]+)*)(?:=[^`]*)?`/g)].map((m) => m[1]!),
      ...[...install.matchAll(/--set ([a-zA-Z.]+)=/g)].map((m) => m[1]!),
    ].filter((k) => top.includes(k.split('.')[0]!));
    expect(mentioned.length).toBeGreaterThan(5);
    expect([...new Set(mentioned)].filter((k) => !exists(k))).toEqual([]);
  });
});
