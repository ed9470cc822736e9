/**
 * The label set an identity stands for: a pod's labels minus those that change with
 * every pod of one workload, its namespace's labels (prefixed) and the namespace name.
 */
import type { Labels } from '../store/types.js';

/**
 * Pod labels that differ between pods of one Deployment, StatefulSet, DaemonSet or Job.
 * Keeping them would mint one identity per pod (Cilium drops the same ones).
 */
export const EXCLUDED_POD_LABELS: readonly string[] = [
  'pod-template-hash',
  'pod-template-generation',
  'controller-revision-hash',
  'statefulset.kubernetes.io/pod-name',
  'apps.kubernetes.io/pod-index',
  'batch.kubernetes.io/job-completion-index',
  'job-completion-index',
];
const EXCLUDED = new Set(EXCLUDED_POD_LABELS);

/** Prefix of namespace labels inside an identity's label list. */
export const NAMESPACE_LABEL_PREFIX = 'ns:';
/** The label carrying the namespace name inside an identity's label list. */
export const NAMESPACE_NAME_LABEL = 'io.kubernetes.pod.namespace';

export function filterPodLabels(labels: Labels): Labels {
  let out: Record<string, string> | undefined;
  for (const k of Object.keys(labels)) {
    if (EXCLUDED.has(k)) {
      out ??= { ...labels };
      delete out[k];
    }
  }
  return out ?? labels;
}

/**
 * Escapes the characters that give "key=value" items and the "ns:" prefix their meaning. Valid
 * label keys and values never contain them (the API server refuses them), so valid label sets
 * read as before; an object that slipped past validation ({"role=db": "x"} against
 * {role: "db=x"}) can no longer take another label set's identity.
 */
function escapeKey(s: string): string {
  return /[\\=:\0]/.test(s) ? s.replace(/[\\=:\0]/g, (c) => `\\${c === '\0' ? '0' : c}`) : s;
}
function escapeValue(s: string): string {
  return /[\\\0]/.test(s) ? s.replace(/[\\\0]/g, (c) => `\\${c === '\0' ? '0' : c}`) : s;
}

/** Sorted "key=value" list of everything an identity stands for (keys and values escaped, see escapeKey). */
export function identityLabelList(namespace: string, podLabels: Labels, nsLabels: Labels): string[] {
  const out: string[] = [`${NAMESPACE_NAME_LABEL}=${escapeValue(namespace)}`];
  for (const [k, v] of Object.entries(podLabels)) out.push(`${escapeKey(k)}=${escapeValue(v)}`);
  for (const [k, v] of Object.entries(nsLabels)) out.push(`${NAMESPACE_LABEL_PREFIX}${escapeKey(k)}=${escapeValue(v)}`);
  return out.sort();
}
