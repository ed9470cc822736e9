/**
 * Reads Kubernetes manifests from files and directories: multi-document YAML, JSON and
 * `kind: List`. Used by `weir lab` and `weir policy explain`.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
// js-yaml, not yaml: it loads and parses several times faster, which `weir policy explain` start-up
// depends on (suite startup in make bench). CORE_SCHEMA: YAML 1.2 core, no timestamps, no merge keys.
import { CORE_SCHEMA, loadAll } from 'js-yaml';
import { ConversionError, toKubeObject } from './convert.js';
import type { KubeObject } from './types.js';
import { formatFieldError, validateObject } from './validate.js';

export class ManifestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ManifestError';
  }
}

const MANIFEST_EXT = /\.(ya?ml|json)$/i;

/** Files named directly, plus every .yaml/.yml/.json under named directories, sorted. */
export function manifestFiles(paths: string[]): string[] {
  const out: string[] = [];
  const walk = (p: string, named: boolean): void => {
    let st;
    try {
      st = statSync(p);
    } catch {
      throw new ManifestError(`${p}: no such file or directory`);
    }
    if (st.isDirectory()) {
      for (const e of readdirSync(p).sort()) walk(join(p, e), false);
    } else if (named || MANIFEST_EXT.test(p)) {
      out.push(p);
    }
  };
  for (const p of paths) walk(p, true);
  return out;
}

/** What a manifest yields: the objects to apply, and those the API server would refuse, in words. */
export interface CheckedManifests {
  objects: KubeObject[];
  /** One line per refused object: `<file>: <Kind> <namespace/name> is invalid: <field>: <message>; ...`. */
  refused: string[];
}

function describeRaw(raw: unknown): string {
  const o = (typeof raw === 'object' && raw !== null ? raw : {}) as { kind?: unknown; metadata?: unknown };
  const meta = (typeof o.metadata === 'object' && o.metadata !== null ? o.metadata : {}) as Record<string, unknown>;
  const ns = typeof meta.namespace === 'string' && meta.namespace !== '' ? `${meta.namespace}/` : '';
  const cluster = o.kind === 'Namespace' || o.kind === 'Node';
  return `${String(o.kind)} ${cluster ? '' : ns || 'default/'}${String(meta.name ?? '')}`;
}

/**
 * Parses manifest text and checks every object as the API server would (agent/store/validate.ts):
 * an object it would refuse is left out and named with its fields, the others are kept, as
 * `kubectl apply` applies the valid objects of a partly invalid file. Invalid YAML still throws.
 */
export function checkManifests(text: string, source: string): CheckedManifests {
  const objects: KubeObject[] = [];
  const refused: string[] = [];
  for (const { raw, where } of rawObjects(text, source)) {
    const problems = validateObject(raw).map(formatFieldError);
    if (problems.length > 0) {
      refused.push(`${where}: ${describeRaw(raw)} is invalid: ${problems.join('; ')}`);
      continue;
    }
    try {
      const o = toKubeObject(raw);
      if (o) objects.push(o);
    } catch (e) {
      if (!(e instanceof ConversionError)) throw e;
      refused.push(`${where}: ${e.message}`);
    }
  }
  return { objects, refused };
}

/** Checks every manifest under the paths (see checkManifests). */
export function loadCheckedManifests(paths: string[]): CheckedManifests {
  const all: CheckedManifests = { objects: [], refused: [] };
  for (const f of manifestFiles(paths)) {
    const r = checkManifests(readFileSync(f, 'utf8'), f);
    all.objects.push(...r.objects);
    all.refused.push(...r.refused);
  }
  return all;
}

function rawObjects(text: string, source: string): { raw: unknown; where: string }[] {
  const out: { raw: unknown; where: string }[] = [];
  let docs: unknown[];
  try {
    docs = loadAll(text, undefined, { schema: CORE_SCHEMA, filename: source });
  } catch (e) {
    throw new ManifestError(`${source}: invalid YAML: ${(e as Error).message}`);
  }
  docs.forEach((raw, i) => {
    if (raw === null || raw === undefined) return;
    const items =
      typeof raw === 'object' && !Array.isArray(raw) && (raw as { kind?: unknown }).kind === 'List'
        ? (((raw as { items?: unknown }).items as unknown[] | undefined) ?? [])
        : [raw];
    if (!Array.isArray(items)) throw new ManifestError(`${source}: document ${i + 1}: List.items must be a list`);
    for (const item of items) out.push({ raw: item, where: `${source}: document ${i + 1}` });
  });
  return out;
}

/** Parses manifest text; `source` names the file in errors. Unsupported kinds are skipped. */
export function parseManifests(text: string, source: string): KubeObject[] {
  const out: KubeObject[] = [];
  for (const { raw, where } of rawObjects(text, source)) {
    try {
      const o = toKubeObject(raw);
      if (o) out.push(o);
    } catch (e) {
      if (e instanceof ConversionError) throw new ManifestError(`${where}: ${e.message}`);
      throw e;
    }
  }
  return out;
}

/** Loads every supported object from the given files and directories. */
export function loadManifests(paths: string[]): KubeObject[] {
  return manifestFiles(paths).flatMap((f) => parseManifests(readFileSync(f, 'utf8'), f));
}
