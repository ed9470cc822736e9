/**
 * Reads Kubernetes manifests from files and directories: multi-document YAML, JSON and
 * `kind: List`. Used by `weir lab` and `weir policy explain`.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
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
  const docs = parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, i) => {
    if (doc.errors.length > 0)
      throw new ManifestError(`${source}: document ${i + 1}: invalid YAML: ${doc.errors[0]!.message}`);
    const raw: unknown = doc.toJS();
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
