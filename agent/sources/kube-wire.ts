/**
 * Kubernetes objects as the API server sends them (wire JSON), and `slim`, which drops what
 * weir never reads before an object is cached.
 */

/** A Kubernetes object as the API server sends it. */
export interface WireObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  [k: string]: unknown;
}

/** "namespace/name" or "name" for cluster-scoped objects. */
export function objectRef(o: WireObject): string {
  const ns = o.metadata?.namespace;
  return ns ? `${ns}/${o.metadata?.name ?? ''}` : (o.metadata?.name ?? '');
}

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';
/** Pod fields weir never reads and that make up much of a Pod's size. */
const POD_SPEC_UNUSED = ['volumes', 'tolerations', 'affinity'] as const;
const POD_STATUS_UNUSED = [
  'conditions',
  'containerStatuses',
  'initContainerStatuses',
  'ephemeralContainerStatuses',
] as const;
const CONTAINER_UNUSED = [
  'env',
  'envFrom',
  'volumeMounts',
  'resources',
  'livenessProbe',
  'readinessProbe',
  'startupProbe',
  'command',
  'args',
] as const;

/**
 * Drops what weir never reads before an object is cached (as client-go's transform functions do):
 * managedFields and kubectl's last-applied annotation everywhere, and the bulky parts of Pods.
 * Mutates and returns `o`.
 */
export function slim(o: WireObject): WireObject {
  const meta = o.metadata as Record<string, unknown> | undefined;
  if (meta) {
    delete meta.managedFields;
    const ann = meta.annotations as Record<string, string> | undefined;
    if (ann && LAST_APPLIED in ann) delete ann[LAST_APPLIED];
  }
  if (o.kind === 'Pod') {
    const spec = o.spec as Record<string, unknown> | undefined;
    const status = o.status as Record<string, unknown> | undefined;
    for (const k of POD_SPEC_UNUSED) delete spec?.[k];
    for (const k of POD_STATUS_UNUSED) delete status?.[k];
    for (const list of ['containers', 'initContainers'] as const) {
      const cs = spec?.[list];
      if (Array.isArray(cs))
        for (const c of cs as Array<Record<string, unknown>>) for (const k of CONTAINER_UNUSED) delete c[k];
    }
  }
  return o;
}

/**
 * Members weir never reads whose values are arrays, as the API server names them: what `slim`
 * drops anyway (and Node images). None of the fields weir reads has one of these names, and a
 * label, annotation or matchLabels value is a string, never an array.
 */
export const UNREAD_ARRAYS = [
  'managedFields',
  'conditions',
  'containerStatuses',
  'initContainerStatuses',
  'ephemeralContainerStatuses',
  'volumes',
  'volumeMounts',
  'tolerations',
  'env',
  'envFrom',
  'images',
] as const;
const UNREAD_NAMES = UNREAD_ARRAYS.map((k) => Buffer.from(k));
/** The end of a member name followed by an array value: `":[`. */
const KEY_THEN_ARRAY = Buffer.from('":[');
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;

/**
 * The index after the JSON array or object that starts at `i`, or -1 when it does not end
 * within `b`. Strings are skipped whole (escapes included), so brackets inside them do not count.
 */
function skipContainer(b: Buffer, i: number): number {
  let depth = 0;
  for (; i < b.length; i++) {
    const c = b[i]!;
    if (c === QUOTE) {
      for (i++; i < b.length && b[i] !== QUOTE; i++) if (b[i] === BACKSLASH) i++;
    } else if (c === 0x5b || c === 0x7b) depth++;
    else if (c === 0x5d || c === 0x7d) {
      if (--depth === 0) return i + 1;
    }
  }
  return -1;
}

/**
 * Where the member named `name` starts when the key ending at `quote` (the `"` of `":[`) is
 * exactly that name, or -1. Its opening quote must follow `{` or `,`: inside a JSON string every
 * quote is escaped, so neither quote can be part of a string's text.
 */
function memberStart(b: Buffer, quote: number): number {
  for (const name of UNREAD_NAMES) {
    const start = quote - name.length - 1;
    if (start < 1 || b[start] !== QUOTE) continue;
    const before = b[start - 1];
    if (before !== OPEN_OBJECT && before !== COMMA) continue;
    if (b.compare(name, 0, name.length, start + 1, quote) === 0) return start;
  }
  return -1;
}

/**
 * Removes every member named in `UNREAD_ARRAYS` whose value is an array (`"managedFields":[...]`,
 * `"containerStatuses":[...]`, ...) from a JSON text before it is parsed: two thirds of a Pod
 * as the kubelet and the controllers leave it, and most of its small objects, which the agent
 * would parse only to drop. One native search for `":[` finds the array members; a member counts
 * when its key is one of those names, whole, following `{` or `,` (JSON as the API server writes
 * it: no whitespace); anything else is left as it is. A member goes with one comma beside it, so
 * the text stays valid JSON.
 */
export function withoutUnreadArrays(b: Buffer): Buffer {
  let at = b.indexOf(KEY_THEN_ARRAY);
  const parts: Buffer[] = [];
  let from = 0;
  while (at >= 0) {
    const member = memberStart(b, at);
    const end = member < 0 ? -1 : skipContainer(b, at + 2);
    if (end < 0) {
      at = b.indexOf(KEY_THEN_ARRAY, at + 1);
      continue;
    }
    let start = member;
    let stop = end;
    // the comma before it, unless a member cut just before took that one; else the one after
    if (start - 1 >= from && b[start - 1] === COMMA) start--;
    else if (b[stop] === COMMA) stop++;
    parts.push(b.subarray(from, start));
    from = stop;
    at = b.indexOf(KEY_THEN_ARRAY, from);
  }
  if (parts.length === 0) return b;
  parts.push(b.subarray(from));
  return Buffer.concat(parts);
}
