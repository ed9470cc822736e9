/**
 * What the lab's pod agents and their clients say to each other over a pod's unix socket:
 * one JSON object per line each way.
 */
import type { L4Protocol } from '../desired.js';

export interface ServedPort {
  port: number;
  protocol: L4Protocol;
  /** containerPorts[].name, for probes by named port. */
  name?: string;
}

export interface ProbeTarget {
  ip: string;
  port: number;
  protocol: L4Protocol;
}

export interface ProbeOutcome {
  connected: boolean;
  /** How it ended: "answered", "refused", "timeout", "INIT-ACK", "ABORT", or an error code. */
  detail: string;
  /** Milliseconds from the first packet to the outcome. */
  ms: number;
  /** The "namespace/name" the responder greeted with (TCP and UDP): the pod that answered. */
  answeredBy?: string;
}

export type PodAgentRequest =
  { id: number; op: 'ping' } | { id: number; op: 'probe'; targets: ProbeTarget[]; timeoutMs: number };

export type PodAgentResponse =
  | { id: number; ok: true; pod: string; pid: number }
  | { id: number; results: ProbeOutcome[] }
  | { id: number; error: string };

/** The greeting a pod's TCP server sends and its UDP server echoes: the pod's "namespace/name". */
export const GREETING_SUFFIX = '\n';
