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
