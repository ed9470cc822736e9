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

/** Sorted "key=value" list of everything an identity stands for. */
export function identityLabelList(namespace: string, podLabels: Labels, nsLabels: Labels): string[] {
  const out: string[] = [`${NAMESPACE_NAME_LABEL}=${namespace}`];
  for (const [k, v] of Object.entries(podLabels)) out.push(`${k}=${v}`);
  for (const [k, v] of Object.entries(nsLabels)) out.push(`${NAMESPACE_LABEL_PREFIX}${k}=${v}`);
  return out.sort();
}
