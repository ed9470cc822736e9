/** Flows of translated Service traffic: the Service named, its address and port kept beside the backend; filters. */
import { Enricher } from '../../agent/flows/enrich.js';
import { MonotonicClock } from '../../agent/flows/clock.js';
import { buildFlow } from '../../agent/flows/flow.js';
import { compileFilters } from '../../agent/flows/filter.js';
import { buildWhitelist } from '../../agent/flows/cli-filters.js';
import { formatCompact } from '../../agent/flows/format.js';
import { ev, makeContext } from './fixtures.js';

const ctx = {
  ...makeContext(),
  serviceByFrontend: (addr: string, port: number, proto: number) =>
    addr === '10.96.0.10' && port === 80 && proto === 6 ? { namespace: 'shop', name: 'backend' } : undefined,
};
const o = { clock: new MonotonicClock(), enricher: new Enricher(ctx), nodeName: 'n' };

describe('flows through a Service', () => {
  const viaSvc = buildFlow(ev({ service: { addr: '10.96.0.10', port: 80 } }), o);
  const unknown = buildFlow(ev({ service: { addr: '10.96.0.99', port: 80 } }), o);
  const direct = buildFlow(ev({}), o);

  it('carries destination_service and the Service address and port; the destination is the backend', () => {
    expect(viaSvc.destination_service).toEqual({ namespace: 'shop', name: 'backend' });
    expect(viaSvc.destination_service_ip).toBe('10.96.0.10');
    expect(viaSvc.destination_service_port).toBe(80);
    expect(viaSvc.IP.destination).toBe(direct.IP.destination);
    expect(unknown.destination_service).toBeUndefined();
    expect(unknown.destination_service_ip).toBe('10.96.0.99');
    expect(direct.destination_service_ip).toBeUndefined();
    expect(formatCompact(viaSvc)).toContain(' via service shop/backend (10.96.0.10:80)');
    expect(formatCompact(direct)).not.toContain('via service');
  });

  it('destination_service filters: "ns/name", "ns/" and "name"; --to-service', () => {
    const keep = (values: string[]) => {
      const p = compileFilters([{ destination_service: values }], []);
      return [viaSvc, unknown, direct].map((f) => p(f));
    };
    expect(keep(['shop/backend'])).toEqual([true, false, false]);
    expect(keep(['shop/'])).toEqual([true, false, false]);
    expect(keep(['backend'])).toEqual([true, false, false]);
    expect(keep(['other/backend'])).toEqual([false, false, false]);
    expect(buildWhitelist({ toService: ['shop/backend'] })).toEqual([{ destination_service: ['shop/backend'] }]);
  });
});
