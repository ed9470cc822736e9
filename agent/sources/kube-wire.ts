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

const MANAGED_FIELDS = Buffer.from('"managedFields":');
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
 * Removes every `"managedFields":[...]` member from a JSON text before it is parsed: a third or
 * more of a Pod as the API server sends it, and many small objects, which the agent would parse
 * only to drop (`slim`). Found with a native search; a match counts only as a key (its opening
 * quote not escaped) with an array value, as the API server writes it (no whitespace); anything
 * else is left as it is. The member goes with one comma beside it, so the text stays valid JSON.
 * No field weir reads is called managedFields or holds an array (label values are strings).
 */
export function withoutManagedFields(b: Buffer): Buffer {
  let at = b.indexOf(MANAGED_FIELDS);
  if (at < 0) return b;
  const parts: Buffer[] = [];
  let from = 0;
  while (at >= 0) {
    let escapes = 0;
    for (let i = at - 1; i >= from && b[i] === BACKSLASH; i--) escapes++;
    const value = at + MANAGED_FIELDS.length;
    const end = escapes % 2 === 0 && b[value] === OPEN_ARRAY ? skipContainer(b, value) : -1;
    if (end < 0) {
      at = b.indexOf(MANAGED_FIELDS, at + 1);
      continue;
    }
    let start = at;
    let stop = end;
    if (b[start - 1] === COMMA) start--;
    else if (b[stop] === COMMA) stop++;
    parts.push(b.subarray(from, start));
    from = stop;
    at = b.indexOf(MANAGED_FIELDS, from);
  }
  parts.push(b.subarray(from));
  return Buffer.concat(parts);
}
