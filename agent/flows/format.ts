/**
 * How `weir observe` prints flows: compact (one line like Hubble's), table, or JSON
 * (protobuf's JSON mapping, one response per line).
 */
import { timestampToMs } from './clock.js';
import { dropReasonText, matchName, eventTypeName } from './names.js';
import { flowsResponseToJson } from './proto.js';
import { TrafficDirection, Verdict, type Endpoint, type Flow, type GetFlowsResponse } from './types.js';

export type OutputFormat = 'compact' | 'json' | 'table';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['compact', 'json', 'table'];

const ANSI = {
  red: '\x1b[31m',
  green: '\x1b[32m',
  yellow: '\x1b[33m',
  cyan: '\x1b[36m',
  dim: '\x1b[2m',
  reset: '\x1b[0m',
};
type Paint = (color: keyof typeof ANSI, s: string) => string;
const plain: Paint = (_c, s) => s;
const colored: Paint = (c, s) => `${ANSI[c]}${s}${ANSI.reset}`;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** "Nov 23 13:39:16.939" in local time, as Hubble prints it. */
export function formatTime(f: Flow): string {
  const d = new Date(timestampToMs(f.time));
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${MONTHS[d.getMonth()]} ${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function ports(f: Flow): { src?: number; dst?: number } {
  const l = f.l4.TCP ?? f.l4.UDP ?? f.l4.SCTP;
  return l ? { src: l.source_port, dst: l.destination_port } : {};
}

function hostPort(host: string, port: number | undefined): string {
  if (port === undefined) return host;
  return host.includes(':') && !host.includes('/') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** "default/web-0:80" for a pod, else the address; the port when the protocol has one. */
export function endpointName(ep: Endpoint, ip: string, port: number | undefined): string {
  const host = ep.pod_name ? `${ep.namespace}/${ep.pod_name}` : ip;
  return hostPort(host, port);
}

/** "(ID:256)" for cluster identities, "(world)" for reserved ones. */
export function identityTag(ep: Endpoint): string {
  const reserved = ep.labels.find((l) => l.startsWith('reserved:'));
  if (reserved && ep.identity < 256) return `(${reserved.slice('reserved:'.length)})`;
  return `(ID:${ep.identity})`;
}

function directionText(f: Flow): string {
  return f.traffic_direction === TrafficDirection.EGRESS
    ? 'EGRESS'
    : f.traffic_direction === TrafficDirection.INGRESS
      ? 'INGRESS'
      : '';
}

function verdictText(f: Flow, paint: Paint): string {
  if (f.verdict === Verdict.DROPPED) return paint('red', 'DROPPED');
  if (f.verdict === Verdict.FORWARDED) return paint('green', 'FORWARDED');
  return 'UNKNOWN';
}

/** "policy-verdict:l3-l4 INGRESS" or "Policy denied INGRESS". */
function typeText(f: Flow, paint: Paint): string {
  const dir = directionText(f);
  if (f.verdict === Verdict.DROPPED) return `${paint('yellow', dropReasonText(f.drop_reason_desc))} ${dir}`;
  return `${eventTypeName(f.event_type.type)}:${matchName(f.policy_match_type)} ${dir}`;
}

export interface FormatOptions {
  color: boolean;
}

export function formatCompact(f: Flow, o: FormatOptions = { color: false }): string {
  const paint = o.color ? colored : plain;
  const p = ports(f);
  const src = `${paint('cyan', endpointName(f.source, f.IP.source, p.src))} ${paint('dim', identityTag(f.source))}`;
  const dst = `${paint('cyan', endpointName(f.destination, f.IP.destination, p.dst))} ${paint('dim', identityTag(f.destination))}`;
  const arrow = f.is_reply?.value ? '<-' : '->';
  const [left, right] = f.is_reply?.value ? [dst, src] : [src, dst];
  return `${formatTime(f)}: ${left} ${arrow} ${right} ${typeText(f, paint)} ${verdictText(f, paint)} (${f.Summary})`;
}

export const TABLE_HEADER = ['TIMESTAMP', 'SOURCE', 'DESTINATION', 'TYPE', 'VERDICT', 'SUMMARY'] as const;

export function tableRow(f: Flow): string[] {
  const p = ports(f);
  return [
    formatTime(f),
    endpointName(f.source, f.IP.source, p.src),
    endpointName(f.destination, f.IP.destination, p.dst),
    typeText(f, plain),
    verdictText(f, plain),
    f.Summary,
  ];
}

/** Rows aligned in columns, two spaces apart. */
export function formatTable(rows: string[][], header: readonly string[] = TABLE_HEADER): string {
  const all = [header as readonly string[], ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

export function formatJson(r: GetFlowsResponse): string {
  return JSON.stringify(flowsResponseToJson(r));
}

export function formatLost(r: GetFlowsResponse): string {
  const l = r.lost_events!;
  const source = l.source === 1 ? 'datapath ring buffer' : l.source === 2 ? 'this client was too slow' : 'unknown';
  return `EVENTS LOST: ${l.num_events_lost} (${source})`;
}
