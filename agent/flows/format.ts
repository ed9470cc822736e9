/**
 * How `weir observe` prints flows, as Hubble does: compact (one line), dict (one field a
 * line), table, json (each flow object) or jsonpb (each whole GetFlowsResponse), both in
 * protobuf's JSON mapping; times in Hubble's layouts.
 */
import { flowToJson, flowsResponseToJson } from './proto.js';
import { dropReasonText, matchName, eventTypeName } from './names.js';
import { NodeState, TrafficDirection, Verdict, type Endpoint, type Flow, type GetFlowsResponse } from './types.js';

export type OutputFormat = 'compact' | 'dict' | 'json' | 'jsonpb' | 'table';
/** Go's layouts Hubble offers for --time-format. */
export type TimeFormat = 'StampMilli' | 'RFC3339' | 'RFC3339Milli' | 'RFC3339Micro' | 'RFC3339Nano' | 'RFC1123Z';

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
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

/** A flow's time in local time, in one of Hubble's layouts ("Nov 23 13:39:16.939" by default). */
export function formatTime(f: Flow, layout: TimeFormat = 'StampMilli'): string {
  const secs = Number(f.time.seconds);
  const nanos = Number(f.time.nanos);
  const d = new Date(secs * 1000 + Math.floor(nanos / 1e6));
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const hms = `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  const date = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
  const off = -d.getTimezoneOffset();
  const offAbs = Math.abs(off);
  const zone = (colon: boolean) =>
    `${off < 0 ? '-' : '+'}${p(Math.floor(offAbs / 60))}${colon ? ':' : ''}${p(offAbs % 60)}`;
  const z = off === 0 ? 'Z' : zone(true);
  const frac = (digits: number) => `.${p(nanos, 9).slice(0, digits)}`;
  switch (layout) {
    case 'RFC3339':
      return `${date}T${hms}${z}`;
    case 'RFC3339Milli':
      return `${date}T${hms}${frac(3)}${z}`;
    case 'RFC3339Micro':
      return `${date}T${hms}${frac(6)}${z}`;
    case 'RFC3339Nano':
      return `${date}T${hms}${frac(9)}${z}`;
    case 'RFC1123Z':
      return `${DAYS[d.getDay()]}, ${p(d.getDate())} ${MONTHS[d.getMonth()]} ${d.getFullYear()} ${hms} ${zone(false)}`;
    default:
      return `${MONTHS[d.getMonth()]} ${p(d.getDate())} ${hms}${frac(3)}`;
  }
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
  color?: boolean;
  timeFormat?: TimeFormat;
  /** Print the node each flow was seen on (--print-node-name). */
  nodeName?: boolean;
}

/** " via service shop/db (10.96.0.5:5432)" for a flow the datapath translated, else "". */
function serviceText(f: Flow): string {
  // absent, or proto3's default "" once the flow came over the wire
  if (!f.destination_service_ip) return '';
  const name = f.destination_service
    ? `service ${f.destination_service.namespace}/${f.destination_service.name} `
    : 'service ';
  const addr = f.destination_service_ip.includes(':') ? `[${f.destination_service_ip}]` : f.destination_service_ip;
  return ` via ${name}(${addr}:${f.destination_service_port ?? 0})`;
}

export function formatCompact(f: Flow, o: FormatOptions = {}): string {
  const paint = o.color ? colored : plain;
  const node = o.nodeName ? ` [${f.node_name}]` : '';
  const p = ports(f);
  const src = `${paint('cyan', endpointName(f.source, f.IP.source, p.src))} ${paint('dim', identityTag(f.source))}`;
  const dst = `${paint('cyan', endpointName(f.destination, f.IP.destination, p.dst))} ${paint('dim', identityTag(f.destination))}${serviceText(f)}`;
  const arrow = f.is_reply?.value ? '<-' : '->';
  const [left, right] = f.is_reply?.value ? [dst, src] : [src, dst];
  return `${formatTime(f, o.timeFormat)}${node}: ${left} ${arrow} ${right} ${typeText(f, paint)} ${verdictText(f, paint)} (${f.Summary})`;
}

export const TABLE_HEADER = ['TIMESTAMP', 'SOURCE', 'DESTINATION', 'TYPE', 'VERDICT', 'SUMMARY'] as const;

/** The table's header: with a NODE column after TIMESTAMP when node names are printed. */
export function tableHeader(o: FormatOptions = {}): string[] {
  return o.nodeName ? ['TIMESTAMP', 'NODE', ...TABLE_HEADER.slice(1)] : [...TABLE_HEADER];
}

export function tableRow(f: Flow, o: FormatOptions = {}): string[] {
  const p = ports(f);
  return [
    formatTime(f, o.timeFormat),
    ...(o.nodeName ? [f.node_name] : []),
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

/** One flow as Hubble's `-o dict` prints it: one field a line, names right-aligned, records separated. */
export function formatDict(f: Flow, o: FormatOptions = {}, first = false): string {
  const header = tableHeader(o);
  const row = tableRow(f, o);
  const width = Math.max(...header.map((h) => h.length));
  const lines = header.map((h, i) => `${h.padStart(width)}: ${row[i] ?? ''}`);
  return `${first ? '' : '------------\n'}${lines.join('\n')}`;
}

/** `-o json`: the flow object alone, in protobuf's JSON mapping (Hubble's json output). */
export function formatJson(f: Flow): string {
  return JSON.stringify(flowToJson(f));
}

/** `-o jsonpb`: the whole GetFlowsResponse (flow, node_name, time) in protobuf's JSON mapping. */
export function formatJsonpb(r: GetFlowsResponse): string {
  return JSON.stringify(flowsResponseToJson(r));
}

const NODE_STATE_TEXT: Record<number, string> = {
  [NodeState.NODE_CONNECTED]: 'connected',
  [NodeState.NODE_UNAVAILABLE]: 'unavailable',
  [NodeState.NODE_GONE]: 'gone',
  [NodeState.NODE_ERROR]: 'error',
};

/** A relay's node_status message: "NODE STATUS: unavailable: node-b (connection refused)". */
export function formatNodeStatus(r: GetFlowsResponse): string {
  const s = r.node_status!;
  return `NODE STATUS: ${NODE_STATE_TEXT[s.state_change] ?? 'unknown'}: ${s.node_names.join(', ')}${s.message ? ` (${s.message})` : ''}`;
}

export function formatLost(r: GetFlowsResponse): string {
  const l = r.lost_events!;
  const source = l.source === 1 ? 'datapath ring buffer' : l.source === 2 ? 'this client was too slow' : 'unknown';
  return `EVENTS LOST: ${l.num_events_lost} (${source})`;
}
