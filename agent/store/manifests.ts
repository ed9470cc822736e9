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

/** Parses manifest text; `source` names the file in errors. Unsupported kinds are skipped. */
export function parseManifests(text: string, source: string): KubeObject[] {
  const out: KubeObject[] = [];
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
    for (const item of items) {
      try {
        const o = toKubeObject(item);
        if (o) out.push(o);
      } catch (e) {
        if (e instanceof ConversionError) throw new ManifestError(`${source}: document ${i + 1}: ${e.message}`);
        throw e;
      }
    }
  });
  return out;
}

/** Loads every supported object from the given files and directories. */
export function loadManifests(paths: string[]): KubeObject[] {
  return manifestFiles(paths).flatMap((f) => parseManifests(readFileSync(f, 'utf8'), f));
}
