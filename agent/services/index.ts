/**
 * Services in the agent's pipeline: `withServices` puts the Services compiler beside the policy
 * compiler, so that one store change yields one diff with the policy part and the frontends
 * that came, changed or went (`servicesUpserted` / `servicesRemoved`), and the snapshot carries
 * `services`. Off (`services.enabled: false`), the policy compiler is used alone: no frontend is
 * published, and traffic to a Service address is judged as traffic to that address (`world`).
 */
import type { PolicyCompiler } from '../daemon.js';
import type { DesiredDiff, DesiredState } from '../desired.js';
import type { StoreChange } from '../store/store.js';
import { ServiceCompiler } from './compiler.js';

export * from './compiler.js';
export * from './endpointslices.js';

export interface ServicesCompiler extends PolicyCompiler {
  readonly services: ServiceCompiler;
}

function merge(diff: DesiredDiff, services: ServiceCompiler): DesiredDiff {
  const { upserted, removed } = services.flush();
  if (upserted.length === 0 && removed.length === 0) return diff;
  return {
    ...diff,
    servicesUpserted: [...(diff.servicesUpserted ?? []), ...upserted],
    servicesRemoved: [...(diff.servicesRemoved ?? []), ...removed],
  };
}

export function withServices(
  inner: PolicyCompiler & Required<Pick<PolicyCompiler, 'applyAll'>>,
  nodeName: string | undefined,
): ServicesCompiler {
  const services = new ServiceCompiler(nodeName);
  const applyAll = (changes: Iterable<StoreChange>): DesiredDiff => {
    const list = [...changes];
    for (const c of list) services.ingest(c.kind, c.key, c.new);
    return merge(inner.applyAll(list), services);
  };
  const ingestAll = (changes: Iterable<StoreChange>): void => {
    const list = [...changes];
    for (const c of list) services.ingest(c.kind, c.key, c.new);
    if (inner.ingestAll) inner.ingestAll(list);
    else inner.applyAll(list);
  };
  return {
    services,
    apply: (change) => applyAll([change]),
    applyAll,
    ingestAll,
    snapshot: (): DesiredState => ({ ...inner.snapshot(), services: services.snapshot() }),
  };
}
