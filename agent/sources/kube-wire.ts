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
const NEEDLES = UNREAD_ARRAYS.map((k) => Buffer.from(`"${k}":`));
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_ARRAY = 0x5b;

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
 * Removes every member named in `UNREAD_ARRAYS` whose value is an array (`"managedFields":[...]`,
 * `"containerStatuses":[...]`, ...) from a JSON text before it is parsed: two thirds of a Pod
 * as the kubelet and the controllers leave it, and most of its small objects, which the agent
 * would parse only to drop. Keys are found with a native search; a match counts only as a key
 * (its opening quote not escaped) with an array value, as the API server writes it (no
 * whitespace); anything else is left as it is. A member goes with one comma beside it, so the
 * text stays valid JSON.
 */
export function withoutUnreadArrays(b: Buffer): Buffer {
  const next = NEEDLES.map((n) => b.indexOf(n));
  if (next.every((x) => x < 0)) return b;
  const parts: Buffer[] = [];
  let from = 0;
  for (;;) {
    let k = -1;
    for (let n = 0; n < next.length; n++) if (next[n]! >= 0 && (k < 0 || next[n]! < next[k]!)) k = n;
    if (k < 0) break;
    const at = next[k]!;
    let escapes = 0;
    for (let i = at - 1; i >= from && b[i] === BACKSLASH; i--) escapes++;
    const value = at + NEEDLES[k]!.length;
    const end = escapes % 2 === 0 && b[value] === OPEN_ARRAY ? skipContainer(b, value) : -1;
    if (end < 0) {
      next[k] = b.indexOf(NEEDLES[k]!, at + 1);
      continue;
    }
    let start = at;
    let stop = end;
    // the comma before it, unless a member cut just before took that one; else the one after
    if (start - 1 >= from && b[start - 1] === COMMA) start--;
    else if (b[stop] === COMMA) stop++;
    parts.push(b.subarray(from, start));
    from = stop;
    // matches inside what was cut are not members of what is left
    for (let n = 0; n < next.length; n++) if (next[n]! >= 0 && next[n]! < from) next[n] = b.indexOf(NEEDLES[n]!, from);
  }
  parts.push(b.subarray(from));
  return Buffer.concat(parts);
}
