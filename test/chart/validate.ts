/**
 * Validation of rendered objects against the Kubernetes schemas, offline:
 * - kubernetes-models (validators generated from the Kubernetes OpenAPI schema, and the
 *   prometheus-operator CRD schema for ServiceMonitor): types, required fields, enums, formats;
 * - @kubernetes/client-node's model type maps (generated from the same OpenAPI document): every
 *   field name must exist, which the OpenAPI schema alone does not enforce (it allows unknown keys,
 *   the API server would prune them silently).
 */
import * as k8s from '@kubernetes/client-node';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { Secret } from 'kubernetes-models/v1/Secret';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Pod } from 'kubernetes-models/v1/Pod';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';

export interface RenderedObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: unknown;
}

type Validatable = new (data: never) => { validate(): void };

const SCHEMAS: Record<string, { model: Validatable; clientNodeType?: string }> = {
  'v1/ConfigMap': { model: ConfigMap as unknown as Validatable, clientNodeType: 'V1ConfigMap' },
  'v1/Pod': { model: Pod as unknown as Validatable, clientNodeType: 'V1Pod' },
  'v1/Service': { model: Service as unknown as Validatable, clientNodeType: 'V1Service' },
  'v1/ServiceAccount': { model: ServiceAccount as unknown as Validatable, clientNodeType: 'V1ServiceAccount' },
  'apps/v1/DaemonSet': { model: DaemonSet as unknown as Validatable, clientNodeType: 'V1DaemonSet' },
  'apps/v1/Deployment': { model: Deployment as unknown as Validatable, clientNodeType: 'V1Deployment' },
  'v1/Secret': { model: Secret as unknown as Validatable, clientNodeType: 'V1Secret' },
  'rbac.authorization.k8s.io/v1/Role': { model: Role as unknown as Validatable, clientNodeType: 'V1Role' },
  'rbac.authorization.k8s.io/v1/RoleBinding': {
    model: RoleBinding as unknown as Validatable,
    clientNodeType: 'V1RoleBinding',
  },
  'rbac.authorization.k8s.io/v1/ClusterRole': {
    model: ClusterRole as unknown as Validatable,
    clientNodeType: 'V1ClusterRole',
  },
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': {
    model: ClusterRoleBinding as unknown as Validatable,
    clientNodeType: 'V1ClusterRoleBinding',
  },
  // No client-node model for CRDs: the CRD's own schema (kubernetes-models) is the check.
  'monitoring.coreos.com/v1/ServiceMonitor': { model: ServiceMonitor as unknown as Validatable },
};

interface AttributeType {
  name: string;
  baseName: string;
  type: string;
}
type ModelClass = { getAttributeTypeMap(): AttributeType[] };

const PRIMITIVES = new Set(['string', 'number', 'boolean', 'Date', 'any', 'object', 'IntOrString', 'RequestFile']);

/** Field paths in `value` that the model `type` does not define. */
export function unknownFields(value: unknown, type: string, path = ''): string[] {
  if (value === null || value === undefined) return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array) return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, array[1]!, `${path}[${i}]`)) : [];
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    return typeof value === 'object'
      ? Object.entries(value as object).flatMap(([k, v]) => unknownFields(v, map[1]!, `${path}.${k}`))
      : [];
  }
  if (PRIMITIVES.has(type)) return [];
  const cls = (k8s as unknown as Record<string, ModelClass | undefined>)[type];
  if (!cls?.getAttributeTypeMap) return [];
  if (typeof value !== 'object' || Array.isArray(value)) return [];
  const attrs = new Map(cls.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => {
    const t = attrs.get(k);
    if (t === undefined) return [`${path}.${k}`];
    return unknownFields(v, t, `${path}.${k}`);
  });
}

/** Throws an error naming the object and every problem found. */
export function validateObject(o: RenderedObject): void {
  const id = `${o.apiVersion}/${o.kind}`;
  const schema = SCHEMAS[id];
  const where = `${o.kind} ${o.metadata?.name}`;
  if (!schema) throw new Error(`${where}: no schema known for ${id}; add it to test/chart/validate.ts`);
  try {
    new schema.model(o as never).validate();
  } catch (err) {
    throw new Error(
      `${where} does not match the Kubernetes schema: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  if (schema.clientNodeType) {
    const unknown = unknownFields(o, schema.clientNodeType);
    if (unknown.length)
      throw new Error(`${where} has fields the Kubernetes API does not define: ${unknown.join(', ')}`);
  }
}
