/**
 * Metrics from the agent's own events: every store change counts as a Kubernetes (or lab)
 * event by resource and action; every realized revision records its compile time and the
 * time from the change arriving to the datapath holding it.
 */
import type { WeirMetrics } from './metrics.js';

/** A store change as the agent emits it ("change" event). */
export interface ChangeEvent {
  kind: string;
  type: string;
}

/** A realized revision as the agent emits it ("realized" event). */
export interface RealizedEvent {
  compileMs: number;
  realizedMs: number;
}

/** The agent's event emitter, as far as metrics need it. */
export interface AgentEventsLike {
  on(event: 'change' | 'realized', listener: (...args: unknown[]) => void): unknown;
  off(event: 'change' | 'realized', listener: (...args: unknown[]) => void): unknown;
}

/** Subscribes the metrics to the agent's events; returns the unsubscribe function. */
export function recordAgentEvents(metrics: WeirMetrics, events: AgentEventsLike): () => void {
  const onChange = (...args: unknown[]) => {
    const c = args[0] as ChangeEvent;
    metrics.kubernetesEvent(c.kind, c.type);
  };
  const onRealized = (...args: unknown[]) => {
    const r = args[0] as RealizedEvent;
    metrics.observeCompile(r.compileMs / 1000);
    metrics.observeRealization(r.realizedMs / 1000);
  };
  events.on('change', onChange);
  events.on('realized', onRealized);
  return () => {
    events.off('change', onChange);
    events.off('realized', onRealized);
  };
}
