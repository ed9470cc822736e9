/**
 * The patch types the test API server accepts: JSON merge patch (RFC 7386) and Kubernetes'
 * strategic merge patch, as `kubectl apply` sends it for built-in kinds. A strategic merge patch
 * merges lists whose field has the `merge` patch strategy element by element (by the field's merge
 * key, or as a set for lists of scalars) and replaces every other list; it understands the
 * directives `$patch` (merge, replace, delete), `$setElementOrder/<list>`,
 * `$deleteFromPrimitiveList/<list>` and `$retainKeys`. Which lists merge comes from the schemas
 * (openapi.ts), the same ones kubectl reads.
 */
import type { Schema, SchemaSet } from './openapi.js';

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const clone = <T>(o: T): T => structuredClone(o);

/** JSON merge patch (RFC 7386). */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return clone(patch);
  const out: Obj = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

const ORDER = '$setElementOrder/';
const DELETE_PRIMITIVE = '$deleteFromPrimitiveList/';
const isDirective = (k: string): boolean => k.startsWith('$');

/** A patch value stored where nothing was: its directives removed, deleted elements dropped. */
function strip(v: unknown): unknown {
  if (Array.isArray(v)) return v.filter((x) => !(isObj(x) && x.$patch === 'delete')).map(strip);
  if (!isObj(v)) return v;
  const out: Obj = {};
  for (const [k, x] of Object.entries(v)) if (!isDirective(k) && x !== null) out[k] = strip(x);
  return out;
}

export class StrategicMergePatch {
  constructor(private readonly schemas: SchemaSet) {}

  /** Applies `patch` to an object of `kind`; throws on a malformed patch (the server answers 400). */
  apply(kind: string, original: Obj, patch: unknown): Obj {
    if (!isObj(patch)) throw new Error('a strategic merge patch must be a JSON object');
    const out = this.mergeMap(clone(original), patch, this.schemas.kind(kind));
    if (out === undefined) throw new Error('$patch: delete of the whole object is not supported; use DELETE');
    return out;
  }

  private mergeMap(original: Obj, patch: Obj, schema: Schema | undefined): Obj | undefined {
    const directive = patch.$patch;
    if (directive === 'delete') return undefined;
    if (directive === 'replace') return strip(patch) as Obj;
    if (directive !== undefined && directive !== 'merge')
      throw new Error(`unknown $patch directive "${String(directive)}"`);
    let out = original;
    const retain = patch.$retainKeys;
    if (retain !== undefined) {
      if (!Array.isArray(retain)) throw new Error('$retainKeys must be a list');
      out = Object.fromEntries(Object.entries(out).filter(([k]) => retain.includes(k)));
    }
    for (const [k, v] of Object.entries(patch)) {
      if (k.startsWith(DELETE_PRIMITIVE)) {
        const field = k.slice(DELETE_PRIMITIVE.length);
        if (!Array.isArray(v)) throw new Error(`${k} must be a list`);
        if (Array.isArray(out[field])) out[field] = (out[field] as unknown[]).filter((x) => !v.includes(x));
        continue;
      }
      if (isDirective(k)) continue;
      if (v === null) {
        delete out[k];
        continue;
      }
      const meta = this.schemas.patchMeta(schema, k);
      const cur = out[k];
      if (isObj(v) && isObj(cur)) {
        const merged = this.mergeMap(cur, v, meta.schema);
        if (merged === undefined) delete out[k];
        else out[k] = merged;
      } else if (Array.isArray(v) && Array.isArray(cur) && meta.strategy?.split(',').includes('merge')) {
        out[k] = this.mergeList(cur, v, meta.mergeKey, meta.schema?.items);
      } else {
        out[k] = strip(v);
      }
    }
    for (const [k, order] of Object.entries(patch)) {
      if (!k.startsWith(ORDER)) continue;
      const field = k.slice(ORDER.length);
      if (!Array.isArray(order)) throw new Error(`${k} must be a list`);
      if (Array.isArray(out[field]))
        out[field] = this.order(out[field] as unknown[], order, this.schemas.patchMeta(schema, field).mergeKey);
    }
    return out;
  }

  private mergeList(original: unknown[], patch: unknown[], mergeKey: string | undefined, items?: Schema): unknown[] {
    if (patch.some((x) => isObj(x) && x.$patch === 'replace'))
      return strip(patch.filter((x) => !(isObj(x) && x.$patch === 'replace'))) as unknown[];
    if (!mergeKey) {
      const out = [...original];
      for (const x of patch) if (!out.some((y) => JSON.stringify(y) === JSON.stringify(x))) out.push(x);
      return out;
    }
    const out = original.map(clone);
    for (const el of patch) {
      if (!isObj(el)) throw new Error(`an element of a list merged by "${mergeKey}" must be an object`);
      if (!(mergeKey in el)) throw new Error(`an element of a list merged by "${mergeKey}" lacks "${mergeKey}"`);
      const i = out.findIndex((x) => isObj(x) && x[mergeKey] === el[mergeKey]);
      if (el.$patch === 'delete') {
        if (i >= 0) out.splice(i, 1);
        continue;
      }
      if (i < 0) out.push(strip(el));
      else {
        const merged = this.mergeMap(out[i] as Obj, el, items);
        if (merged === undefined) out.splice(i, 1);
        else out[i] = merged;
      }
    }
    return out;
  }

  /** `$setElementOrder`: the listed elements in that order, then the others as they were. */
  private order(list: unknown[], order: unknown[], mergeKey: string | undefined): unknown[] {
    const id = (x: unknown): string => JSON.stringify(mergeKey && isObj(x) ? x[mergeKey] : x);
    const rank = new Map(order.map((x, i) => [id(x), i]));
    const listed = list.filter((x) => rank.has(id(x))).sort((a, b) => rank.get(id(a))! - rank.get(id(b))!);
    return [...listed, ...list.filter((x) => !rank.has(id(x)))];
  }
}

/** One operation of a JSON patch (RFC 6902). */
interface JsonPatchOp {
  op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  path: string;
  from?: string;
  value?: unknown;
}

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new Error(`JSON pointer "${path}" must start with "/"`);
  return path
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** JSON patch (RFC 6902): a list of operations, applied in order; any failed one fails the whole patch. */
export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new Error('a JSON patch must be a list of operations');
  let doc = clone(target);
  const parentOf = (path: string): { parent: Obj | unknown[]; key: string } => {
    const tokens = pointer(path);
    if (tokens.length === 0) throw new Error('the whole document cannot be the target of this operation');
    let cur: unknown = doc;
    for (const t of tokens.slice(0, -1)) {
      cur = Array.isArray(cur) ? cur[Number(t)] : isObj(cur) ? cur[t] : undefined;
      if (cur === undefined) throw new Error(`path "${path}" does not exist`);
    }
    if (!Array.isArray(cur) && !isObj(cur)) throw new Error(`path "${path}" does not exist`);
    return { parent: cur, key: tokens[tokens.length - 1]! };
  };
  const get = (path: string): unknown => {
    if (path === '') return doc;
    const { parent, key } = parentOf(path);
    const v = Array.isArray(parent) ? parent[Number(key)] : parent[key];
    if (v === undefined) throw new Error(`path "${path}" does not exist`);
    return v;
  };
  const remove = (path: string): unknown => {
    const v = get(path);
    const { parent, key } = parentOf(path);
    if (Array.isArray(parent)) parent.splice(Number(key), 1);
    else delete parent[key];
    return v;
  };
  const add = (path: string, value: unknown): void => {
    if (path === '') {
      doc = clone(value);
      return;
    }
    const { parent, key } = parentOf(path);
    if (Array.isArray(parent)) {
      const i = key === '-' ? parent.length : Number(key);
      if (!Number.isInteger(i) || i < 0 || i > parent.length) throw new Error(`index "${key}" is out of bounds`);
      parent.splice(i, 0, clone(value));
    } else parent[key] = clone(value);
  };
  for (const raw of ops as JsonPatchOp[]) {
    switch (raw.op) {
      case 'add':
        add(raw.path, raw.value);
        break;
      case 'remove':
        remove(raw.path);
        break;
      case 'replace':
        remove(raw.path);
        add(raw.path, raw.value);
        break;
      case 'move':
        add(raw.path, remove(raw.from ?? ''));
        break;
      case 'copy':
        add(raw.path, get(raw.from ?? ''));
        break;
      case 'test':
        if (JSON.stringify(get(raw.path)) !== JSON.stringify(raw.value))
          throw new Error(`test of "${raw.path}" failed`);
        break;
      default:
        throw new Error(`unknown JSON patch operation "${String((raw as { op: unknown }).op)}"`);
    }
  }
  return doc;
}
