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
 * drops anyway (and Node images, owner references, finalizers, host IPs). None of the fields
 * weir reads has one of these names, and a label, annotation or matchLabels value is a string,
 * never an array.
 */
export const UNREAD_ARRAYS = [
  'managedFields',
  'ownerReferences',
  'finalizers',
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
  'hostIPs',
  'command',
  'args',
  'topologySpreadConstraints',
] as const;

/**
 * Members weir never reads whose values are objects: annotations, a container's probes,
 * resources and security context, affinity, a Node's capacity and info. None of the fields weir
 * reads that hold an object has one of these names (an EndpointSlice's `conditions` is an
 * object weir reads: it is not here); label and annotation values are strings.
 */
export const UNREAD_OBJECTS = [
  'annotations',
  'livenessProbe',
  'readinessProbe',
  'startupProbe',
  'lifecycle',
  'resources',
  'securityContext',
  'affinity',
  'dnsConfig',
  'nodeInfo',
  'capacity',
  'allocatable',
  'daemonEndpoints',
] as const;

const ARRAY_NAMES = UNREAD_ARRAYS.map((k) => Buffer.from(k));
const OBJECT_NAMES = UNREAD_OBJECTS.map((k) => Buffer.from(k));
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

/** The index of the closing quote of the JSON string whose opening quote is at `i`, or `end`. */
function stringEnd(b: Buffer, i: number, end: number): number {
  for (i++; i < end; i++) {
    const c = b[i];
    if (c === QUOTE) return i;
    if (c === BACKSLASH) i++;
  }
  return end;
}

/**
 * The index after the JSON array or object that starts at `i`, or -1 when it does not end
 * within `end`. Strings are skipped whole (escapes included), so brackets inside them do not count.
 */
function skipContainer(b: Buffer, i: number, end: number): number {
  let depth = 0;
  for (; i < end; i++) {
    const c = b[i];
    if (c === QUOTE) i = stringEnd(b, i, end);
    else if (c === OPEN_ARRAY || c === OPEN_OBJECT) depth++;
    else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      if (--depth === 0) return i + 1;
    }
  }
  return -1;
}

/** Whether `b[from, to)` is exactly one of `names`. */
function isOneOf(b: Buffer, from: number, to: number, names: readonly Buffer[]): boolean {
  const n = to - from;
  next: for (const name of names) {
    if (name.length !== n) continue;
    for (let k = 0; k < n; k++) if (name[k] !== b[from + k]) continue next;
    return true;
  }
  return false;
}

/**
 * Removes from a JSON text, before it is parsed, every member named in `UNREAD_ARRAYS` whose
 * value is an array (`"managedFields":[...]`, `"containerStatuses":[...]`, ...) and every member
 * named in `UNREAD_OBJECTS` whose value is an object (`"livenessProbe":{...}`, ...): about four
 * fifths of a Pod as the kubelet and the controllers leave it, and most of its small objects,
 * which the agent would parse only to drop.
 *
 * One pass over the text, strings skipped whole (escapes included), so nothing inside a string
 * is taken for structure: a string followed by `:` is a key; when its value opens with `[` or `{`,
 * the key is one of those names, whole, and follows `{` or `,` (JSON as the API server writes it:
 * no whitespace), the member is cut, with one comma beside it so the text stays valid JSON.
 * Anything else (a member whose value does not end) is left as it is. Linear in the text: each
 * byte is read once, a cut member's bytes by the skip that finds its end.
 *
 * Works in place: the kept text is moved down within `b` (no second buffer of the page), and the
 * returned Buffer is the kept part of `b`, whose bytes past it are left as they were.
 */
export function withoutUnread(b: Buffer): Buffer {
  const len = b.length;
  /** `b[from, ...)` is the text not yet copied; `b[0, to)` the text kept so far. */
  let from = 0;
  let to = 0;
  let i = 0;
  while (i < len) {
    if (b[i] !== QUOTE) {
      i++;
      continue;
    }
    const key = i;
    const close = stringEnd(b, i, len);
    i = close + 1;
    if (i + 1 >= len || b[i] !== COLON) continue;
    const open = b[i + 1];
    if (open !== OPEN_ARRAY && open !== OPEN_OBJECT) continue;
    const before = b[key - 1];
    if (key < 1 || (before !== OPEN_OBJECT && before !== COMMA)) continue;
    if (!isOneOf(b, key + 1, close, open === OPEN_ARRAY ? ARRAY_NAMES : OBJECT_NAMES)) continue;
    const end = skipContainer(b, i + 1, len);
    if (end < 0) continue;
    let start = key;
    let stop = end;
    // the comma before it, unless a member cut just before took that one; else the one after
    if (start - 1 >= from && b[start - 1] === COMMA) start--;
    else if (b[stop] === COMMA) stop++;
    if (to !== from) b.copyWithin(to, from, start);
    to += start - from;
    from = stop;
    i = stop;
  }
  if (from === 0) return b;
  if (to !== from) b.copyWithin(to, from, len);
  return b.subarray(0, to + len - from);
}
