/**
 * `weir lab probe`: every chosen pair of lab pods, all at once, each with a short timeout; the
 * result as the truth table of the upstream NetworkPolicy e2e suite or as JSON.
 */
import type { L4Protocol } from '../desired.js';
import { probeFrom } from './pod-client.js';
import { podKey, type LabPod } from './runtime.js';

export interface ProbeRequest {
  /** A port number, or a container port name resolved on each destination pod. */
  port: number | string;
  protocol: L4Protocol;
  /** "ns/pod", "ns/" (every pod of a namespace) or undefined for every pod. */
  from?: string;
  to?: string;
  family?: 4 | 6;
  timeoutMs?: number;
}

export interface ProbeResult {
  from: string;
  to: string;
  connected: boolean;
}

export interface ProbeDetail extends ProbeResult {
  /** Port probed (named ports resolved), undefined when the destination has no such named port. */
  port?: number;
  detail: string;
  ms: number;
}

export interface ProbeMatrix {
  port: number | string;
  protocol: L4Protocol;
  results: ProbeResult[];
}

export const DEFAULT_PROBE_TIMEOUT_MS = 1000;

function selects(sel: string | undefined, key: string): boolean {
  if (sel === undefined || sel === '') return true;
  if (sel.endsWith('/')) return key.startsWith(sel);
  if (!sel.includes('/')) return key.startsWith(`${sel}/`);
  return key === sel;
}

export function selectPods(pods: LabPod[], sel: string | undefined, flag: string): LabPod[] {
  const out = pods.filter((p) => selects(sel, podKey(p))).sort((a, b) => podKey(a).localeCompare(podKey(b)));
  if (out.length === 0) {
    throw new Error(
      `${flag} ${sel} matches no lab pod; pods: ${pods.map(podKey).join(', ') || 'none (is the lab up?)'}`,
    );
  }
  return out;
}

/** Resolves a named port against the destination pod's declared container ports. */
export function resolvePort(dst: LabPod, port: number | string, protocol: L4Protocol): number | undefined {
  if (typeof port === 'number') return port;
  return dst.ports.find((p) => p.name === port && p.protocol === protocol)?.port;
}

/** Runs the probes; sources in parallel, and each source's targets in parallel. */
export async function probePods(pods: LabPod[], req: ProbeRequest): Promise<ProbeDetail[]> {
  const sources = selectPods(pods, req.from, '--from');
  const dests = selectPods(pods, req.to, '--to');
  const timeoutMs = req.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  const family = req.family ?? 4;
  const perSource = await Promise.all(
    sources.map(async (src) => {
      const plan = dests.map((dst) => ({ dst, port: resolvePort(dst, req.port, req.protocol) }));
      const targets = plan
        .filter((p) => p.port !== undefined)
        .map((p) => ({ ip: family === 4 ? p.dst.ip4 : p.dst.ip6, port: p.port as number, protocol: req.protocol }));
      const outcomes = targets.length ? await probeFrom(src.socket, targets, timeoutMs) : [];
      let i = 0;
      return plan.map(({ dst, port }): ProbeDetail => {
        if (port === undefined)
          return {
            from: podKey(src),
            to: podKey(dst),
            connected: false,
            detail: `no ${req.protocol} port named ${String(req.port)}`,
            ms: 0,
          };
        const o = outcomes[i++];
        if (!o) throw new Error(`probe from ${podKey(src)} returned too few results`);
        return { from: podKey(src), to: podKey(dst), port, connected: o.connected, detail: o.detail, ms: o.ms };
      });
    }),
  );
  return perSource.flat();
}

export function toMatrix(req: Pick<ProbeRequest, 'port' | 'protocol'>, details: ProbeResult[]): ProbeMatrix {
  return {
    port: req.port,
    protocol: req.protocol,
    results: details.map(({ from, to, connected }) => ({ from, to, connected })),
  };
}
