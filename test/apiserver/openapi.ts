/**
 * OpenAPI v3 for the test API server, as far as kubectl needs it: `/openapi/v3` (the index of
 * group-versions) and one document per group-version with a path item per resource (its PATCH
 * operation declares the `fieldValidation` query parameter, so kubectl validates on the server) and
 * the schemas of the kinds served, with Kubernetes' `x-kubernetes-group-version-kind` and the
 * strategic-merge-patch extensions (`x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`).
 *
 * The schemas are generated from the `kubernetes-models` package, whose type declarations are
 * generated from Kubernetes' own OpenAPI definitions: the TypeScript compiler reads the declaration
 * of each kind and every type it reaches. Those declarations do not carry the patch extensions, so
 * the list merge keys of the kinds served are in PATCH_META below, copied from the struct tags of
 * k8s.io/api (`patchStrategy`, `patchMergeKey`). The same table drives the server's strategic merge
 * patch (patch.ts), so kubectl and the server agree on it.
 */
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import ts from 'typescript';
import type { ResourceKind } from './resources.js';

export interface Schema {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  additionalProperties?: Schema;
  enum?: string[];
  allOf?: Schema[];
  $ref?: string;
  [ext: `x-kubernetes-${string}`]: unknown;
}

export interface PatchMeta {
  /** "merge", "retainKeys" or "merge,retainKeys". */
  strategy: string;
  /** For lists of objects: the field that identifies an element. */
  mergeKey?: string;
}

/** component schema name -> field -> patch strategy, from the `patchStrategy` tags of k8s.io/api. */
export const PATCH_META: Record<string, Record<string, PatchMeta>> = {
  'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta': {
    finalizers: { strategy: 'merge' },
    ownerReferences: { strategy: 'merge', mergeKey: 'uid' },
  },
  'io.k8s.api.core.v1.PodSpec': {
    volumes: { strategy: 'merge,retainKeys', mergeKey: 'name' },
    initContainers: { strategy: 'merge', mergeKey: 'name' },
    containers: { strategy: 'merge', mergeKey: 'name' },
    ephemeralContainers: { strategy: 'merge', mergeKey: 'name' },
    imagePullSecrets: { strategy: 'merge', mergeKey: 'name' },
    hostAliases: { strategy: 'merge', mergeKey: 'ip' },
    topologySpreadConstraints: { strategy: 'merge', mergeKey: 'topologyKey' },
    schedulingGates: { strategy: 'merge', mergeKey: 'name' },
    resourceClaims: { strategy: 'merge,retainKeys', mergeKey: 'name' },
  },
  'io.k8s.api.core.v1.Container': {
    ports: { strategy: 'merge', mergeKey: 'containerPort' },
    env: { strategy: 'merge', mergeKey: 'name' },
    volumeMounts: { strategy: 'merge', mergeKey: 'mountPath' },
    volumeDevices: { strategy: 'merge', mergeKey: 'devicePath' },
  },
  'io.k8s.api.core.v1.EphemeralContainer': {
    ports: { strategy: 'merge', mergeKey: 'containerPort' },
    env: { strategy: 'merge', mergeKey: 'name' },
    volumeMounts: { strategy: 'merge', mergeKey: 'mountPath' },
    volumeDevices: { strategy: 'merge', mergeKey: 'devicePath' },
  },
  'io.k8s.api.core.v1.PodStatus': {
    conditions: { strategy: 'merge', mergeKey: 'type' },
    podIPs: { strategy: 'merge', mergeKey: 'ip' },
    hostIPs: { strategy: 'merge', mergeKey: 'ip' },
    resourceClaimStatuses: { strategy: 'merge,retainKeys', mergeKey: 'name' },
  },
  'io.k8s.api.core.v1.ServiceSpec': { ports: { strategy: 'merge', mergeKey: 'port' } },
  'io.k8s.api.core.v1.ServiceStatus': { conditions: { strategy: 'merge', mergeKey: 'type' } },
  'io.k8s.api.core.v1.NamespaceStatus': { conditions: { strategy: 'merge', mergeKey: 'type' } },
  'io.k8s.api.core.v1.NodeSpec': { podCIDRs: { strategy: 'merge' } },
  'io.k8s.api.core.v1.NodeStatus': {
    conditions: { strategy: 'merge', mergeKey: 'type' },
    addresses: { strategy: 'merge', mergeKey: 'type' },
  },
  'io.k8s.api.apps.v1.DaemonSetStatus': { conditions: { strategy: 'merge', mergeKey: 'type' } },
};

const require = createRequire(import.meta.url);
const MODELS = dirname(require.resolve('kubernetes-models/package.json'));
const APIMACHINERY = dirname(require.resolve('@kubernetes-models/apimachinery/package.json'));

/** `io.k8s.api.core.v1.PodSpec` for kubernetes-models/v1/PodSpec.d.ts, and so on. */
function componentName(file: string): string | undefined {
  const rel = (base: string) =>
    relative(base, file)
      .split(sep)
      .join('/')
      .replace(/\.d\.ts$/, '');
  if (file.startsWith(APIMACHINERY + sep)) return `io.k8s.apimachinery.pkg.${rel(APIMACHINERY).replace(/\//g, '.')}`;
  if (!file.startsWith(MODELS + sep)) return undefined;
  const parts = rel(MODELS).split('/');
  if (parts.length === 2) return `io.k8s.api.core.${parts[0]}.${parts[1]}`;
  if (parts.length === 3) return `io.k8s.api.${parts[0]!.split('.')[0]}.${parts[1]}.${parts[2]}`;
  return undefined;
}

function declarationFile(r: ResourceKind): string {
  const [group, version] = r.apiVersion.includes('/') ? r.apiVersion.split('/') : ['', r.apiVersion];
  return group ? join(MODELS, group, version!, `${r.kind}.d.ts`) : join(MODELS, version!, `${r.kind}.d.ts`);
}

export function groupVersionKind(r: ResourceKind): { group: string; version: string; kind: string } {
  const [group, version] = r.apiVersion.includes('/') ? r.apiVersion.split('/') : ['', r.apiVersion];
  return { group: group!, version: version!, kind: r.kind };
}

/** The component schemas of the given kinds and of everything they reach. */
export class SchemaSet {
  readonly schemas: Record<string, Schema> = {};
  readonly kindSchema = new Map<string, string>();

  constructor(resources: readonly ResourceKind[]) {
    const files = resources.map(declarationFile);
    const program = ts.createProgram(files, {
      skipLibCheck: true,
      noEmit: true,
      types: [],
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
    });
    const checker = program.getTypeChecker();
    for (const [i, r] of resources.entries()) {
      const sf = program.getSourceFile(files[i]!);
      const decl = sf?.statements.find(
        (s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === `I${r.kind}`,
      );
      if (!decl) throw new Error(`kubernetes-models has no declaration of ${r.kind} in ${files[i]}`);
      const name = componentName(files[i]!)!;
      this.named(checker, checker.getTypeAtLocation(decl.name), name);
      this.schemas[name]!['x-kubernetes-group-version-kind'] = [groupVersionKind(r)];
      this.kindSchema.set(r.kind, name);
    }
  }

  private named(checker: ts.TypeChecker, type: ts.Type, name: string): void {
    if (this.schemas[name]) return;
    const schema: Schema = { type: 'object', properties: {} };
    this.schemas[name] = schema;
    const required: string[] = [];
    const meta = PATCH_META[name] ?? {};
    for (const prop of checker.getPropertiesOfType(type)) {
      const decl = prop.valueDeclaration ?? prop.declarations?.[0];
      if (!decl) continue;
      const p = this.of(checker, checker.getTypeOfSymbolAtLocation(prop, decl));
      const description = ts.displayPartsToString(prop.getDocumentationComment(checker));
      if (description) p.description = description;
      const m = meta[prop.name];
      if (m) {
        p['x-kubernetes-patch-strategy'] = m.strategy;
        if (m.mergeKey) p['x-kubernetes-patch-merge-key'] = m.mergeKey;
      }
      schema.properties![prop.name] = p;
      if (!(prop.flags & ts.SymbolFlags.Optional)) required.push(prop.name);
    }
    if (required.length) schema.required = required;
  }

  private of(checker: ts.TypeChecker, type: ts.Type): Schema {
    if (type.isUnion()) {
      const members = type.types.filter((t) => !(t.flags & (ts.TypeFlags.Undefined | ts.TypeFlags.Null)));
      if (members.every((t) => t.isStringLiteral()))
        return { type: 'string', enum: members.map((t) => (t as ts.StringLiteralType).value) };
      if (members.every((t) => t.flags & ts.TypeFlags.BooleanLiteral)) return { type: 'boolean' };
      const kinds = new Set(members.map((t) => (t.flags & ts.TypeFlags.StringLike ? 's' : 'n')));
      if (members.every((t) => t.flags & (ts.TypeFlags.StringLike | ts.TypeFlags.NumberLike)) && kinds.size === 2)
        return { 'x-kubernetes-int-or-string': true };
      if (members.length === 1) return this.of(checker, members[0]!);
      return { 'x-kubernetes-preserve-unknown-fields': true };
    }
    if (type.flags & ts.TypeFlags.StringLike)
      return type.isStringLiteral() ? { type: 'string', enum: [type.value] } : { type: 'string' };
    if (type.flags & ts.TypeFlags.NumberLike) return { type: 'number' };
    if (type.flags & ts.TypeFlags.BooleanLike) return { type: 'boolean' };
    if (checker.isArrayType(type)) {
      const [item] = checker.getTypeArguments(type as ts.TypeReference);
      return { type: 'array', items: item ? this.of(checker, item) : {} };
    }
    const index = type.getStringIndexType();
    if (index) return { type: 'object', additionalProperties: this.of(checker, index) };
    const decl = type.getSymbol()?.declarations?.[0];
    const name = decl ? componentName(decl.getSourceFile().fileName) : undefined;
    if (name && checker.getPropertiesOfType(type).length > 0) {
      this.named(checker, type, name);
      return { allOf: [{ $ref: `#/components/schemas/${name}` }] };
    }
    // `object`, `any`, RawExtension and the like: anything goes.
    return { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
  }

  /** Resolves a property schema to the object schema it refers to, if any. */
  resolve(s: Schema | undefined): Schema | undefined {
    if (!s) return undefined;
    const ref = s.$ref ?? s.allOf?.[0]?.$ref;
    return ref ? this.schemas[ref.replace('#/components/schemas/', '')] : s;
  }

  /**
   * Fields of `obj` that the schema of `kind` does not know, as the API server names them in a
   * strict decoding error ("spec.podSelectr", "spec.ports[0].nodeport").
   */
  unknownFields(kind: string, obj: unknown): string[] {
    const name = this.kindSchema.get(kind);
    if (!name) return [];
    const out: string[] = [];
    const walk = (s: Schema | undefined, v: unknown, path: string): void => {
      const schema = this.resolve(s);
      if (!schema || schema['x-kubernetes-preserve-unknown-fields'] || v === null || typeof v !== 'object') return;
      if (Array.isArray(v)) {
        if (schema.items) v.forEach((x, i) => walk(schema.items, x, `${path}[${i}]`));
        return;
      }
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        const sub = path ? `${path}.${k}` : k;
        if (schema.additionalProperties) walk(schema.additionalProperties, x, sub);
        else if (schema.properties?.[k]) walk(schema.properties[k], x, sub);
        else if (schema.properties) out.push(sub);
      }
    };
    walk(this.schemas[name], obj, '');
    return out;
  }

  /** Patch strategy of field `key` of an object of schema `s`. */
  patchMeta(s: Schema | undefined, key: string): { strategy?: string; mergeKey?: string; schema?: Schema } {
    const p = this.resolve(s)?.properties?.[key];
    if (!p) return {};
    return {
      strategy: p['x-kubernetes-patch-strategy'] as string | undefined,
      mergeKey: p['x-kubernetes-patch-merge-key'] as string | undefined,
      schema: p,
    };
  }

  /** The schema of a kind's object. */
  kind(kind: string): Schema | undefined {
    const name = this.kindSchema.get(kind);
    return name ? this.schemas[name] : undefined;
  }
}

let cached: { key: string; set: SchemaSet } | undefined;

/** The schema set of these resources, generated once per process. */
export function schemaSet(resources: readonly ResourceKind[]): SchemaSet {
  const key = resources.map((r) => `${r.apiVersion}/${r.kind}`).join(',');
  if (cached?.key !== key) cached = { key, set: new SchemaSet(resources) };
  return cached.set;
}

/** `/openapi/v3`: where each group-version's document is. */
export function openApiIndex(resources: readonly ResourceKind[]): unknown {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const gv of new Set(resources.map((r) => r.apiVersion))) {
    const p = gv.includes('/') ? `apis/${gv}` : `api/${gv}`;
    paths[p] = { serverRelativeURL: `/openapi/v3/${p}` };
  }
  return { paths };
}

const PATCH_TYPES = [
  'application/json-patch+json',
  'application/merge-patch+json',
  'application/strategic-merge-patch+json',
];

/** The OpenAPI v3 document of one group-version (`api/v1`, `apis/networking.k8s.io/v1`). */
export function openApiDocument(groupVersion: string, resources: readonly ResourceKind[]): unknown | undefined {
  const mine = resources.filter((r) => r.apiVersion === groupVersion);
  if (mine.length === 0) return undefined;
  const set = schemaSet(resources);
  const prefix = groupVersion.includes('/') ? `/apis/${groupVersion}` : `/api/${groupVersion}`;
  const query = (name: string, description: string) => ({
    name,
    in: 'query',
    description,
    schema: { type: 'string', uniqueItems: true },
  });
  const params = [
    query('dryRun', 'When present, modifications are not persisted.'),
    query('fieldManager', 'A name for the actor making these changes.'),
    query('fieldValidation', 'Ignore, Warn or Strict: what to do with unknown or duplicate fields.'),
  ];
  const paths: Record<string, unknown> = {};
  const schemas: Record<string, Schema> = {};
  const collect = (name: string): void => {
    if (schemas[name]) return;
    const s = set.schemas[name]!;
    schemas[name] = s;
    JSON.stringify(s, (k, v: unknown) => {
      if (k === '$ref' && typeof v === 'string') collect(v.replace('#/components/schemas/', ''));
      return v;
    });
  };
  for (const r of mine) {
    const gvk = groupVersionKind(r);
    const schemaName = set.kindSchema.get(r.kind)!;
    collect(schemaName);
    const ref = { $ref: `#/components/schemas/${schemaName}` };
    const body = (types: string[]) => ({
      content: Object.fromEntries(types.map((t) => [t, { schema: t.includes('patch') ? { type: 'object' } : ref }])),
      required: true,
    });
    const ok = { responses: { '200': { content: { 'application/json': { schema: ref } } } } };
    const op = (action: string, extra: Record<string, unknown> = {}) => ({
      ...extra,
      ...ok,
      'x-kubernetes-action': action,
      'x-kubernetes-group-version-kind': gvk,
    });
    const base = r.namespaced ? `${prefix}/namespaces/{namespace}/${r.plural}` : `${prefix}/${r.plural}`;
    paths[base] = {
      get: op('list'),
      post: op('post', { parameters: params, requestBody: body(['*/*']) }),
    };
    paths[`${base}/{name}`] = {
      get: op('get'),
      put: op('put', { parameters: params, requestBody: body(['*/*']) }),
      patch: op('patch', { parameters: params, requestBody: body(PATCH_TYPES) }),
      delete: op('delete'),
    };
  }
  return {
    openapi: '3.0.0',
    info: { title: 'weir test API server', version: groupVersion },
    paths,
    components: { schemas },
  };
}
