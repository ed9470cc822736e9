/**
 * Names for the datapath's numeric codes (bpf/weir_abi.h), as the flow API, the CLI
 * and the metrics spell them. Hubble's names where Hubble has the same concept.
 */

/**
 * WEIR_DROP_* (bpf/weir_abi.h, small integers) -> the flow API's DropReason (observer.proto):
 * Hubble's number and name where Hubble has the reason, weir's own from 1000 up. The
 * datapath never sees these numbers; this table is the one place they are chosen. A new
 * datapath reason gets one row here and, when its number is new, one value in the
 * DropReason enum of observer.proto (test/flows/wire.test.ts checks both agree).
 * Reasons Hubble has that weir may report next: INVALID_IPV6_EXTENSION_HEADER 156.
 */
export const DROP_REASONS: ReadonlyArray<{ code: number; name: string; proto: number; text: string }> = [
  { code: 1, name: 'POLICY_DENIED', proto: 133, text: 'Policy denied' },
  { code: 2, name: 'POLICY_REVOKED', proto: 1002, text: 'Policy revoked' },
  { code: 3, name: 'CT_TRUNCATED_OR_INVALID_HEADER', proto: 135, text: 'Truncated or invalid header' },
  { code: 4, name: 'INVALID_PACKET_DROPPED', proto: 134, text: 'Invalid packet' },
  { code: 5, name: 'FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND', proto: 175, text: 'First fragment not seen' },
  { code: 6, name: 'UNSUPPORTED_L3_PROTOCOL', proto: 139, text: 'Unsupported L3 protocol' },
  { code: 7, name: 'CT_MAP_INSERTION_FAILED', proto: 155, text: 'Conntrack map full' },
  { code: 8, name: 'NO_ENDPOINT', proto: 1003, text: 'No endpoint record for this interface' },
  { code: 9, name: 'INVALID_SOURCE_IP', proto: 132, text: 'Invalid source ip' },
  { code: 10, name: 'CT_NEW_CONNECTION_BUDGET', proto: 1010, text: 'New connections over the endpoint budget' },
  { code: 11, name: 'SERVICE_BACKEND_NOT_FOUND', proto: 158, text: 'Service backend not found' },
  {
    code: 12,
    name: 'SERVICE_TRANSLATION_UNSUPPORTED',
    proto: 1011,
    text: 'Service translation not supported (SCTP to another port, or masqueraded)',
  },
  { code: 13, name: 'NO_MAPPING_FOR_NAT_MASQUERADE', proto: 167, text: 'No mapping for NAT masquerade' },
];

const dropByCode = new Map(DROP_REASONS.map((d) => [d.code, d]));
const dropByProto = new Map(DROP_REASONS.map((d) => [d.proto, d]));
const dropByName = new Map(DROP_REASONS.map((d) => [d.name, d]));

/** WEIR_DROP_* code -> DropReason proto value (0 when none or unknown). */
export function dropReasonProto(code: number): number {
  return dropByCode.get(code)?.proto ?? 0;
}

/** DropReason proto value -> its name ("POLICY_DENIED"); unknown values as "DROP_REASON_<n>". */
export function dropReasonName(proto: number): string {
  if (proto === 0) return 'DROP_REASON_UNKNOWN';
  return dropByProto.get(proto)?.name ?? `DROP_REASON_${proto}`;
}

/** DropReason proto value -> the words a person reads ("Policy denied"). */
export function dropReasonText(proto: number): string {
  return dropByProto.get(proto)?.text ?? dropReasonName(proto);
}

/** WEIR_DROP_* code -> metric label value. */
export function dropReasonLabel(code: number): string {
  return dropByCode.get(code)?.name ?? `UNKNOWN_${code}`;
}

/** "POLICY_DENIED", "policy-denied" or "133" -> DropReason proto value, undefined when unknown. */
export function parseDropReason(s: string): number | undefined {
  if (/^\d+$/.test(s)) return Number(s);
  return dropByName.get(s.toUpperCase().replace(/-/g, '_'))?.proto;
}

/** The names dropReasonName can return, for help texts and errors. */
export const DROP_REASON_NAMES: readonly string[] = DROP_REASONS.map((d) => d.name);

/** WEIR_MATCH_* index -> name, as in metrics labels and the compact flow line. */
export const MATCH_NAMES: readonly string[] = [
  'none',
  'l3-l4',
  'l3-only',
  'l4-only',
  'all',
  'not-isolated',
  'host',
  'established',
  'related',
  'always',
];

export function matchName(code: number): string {
  return MATCH_NAMES[code] ?? `match-${code}`;
}

/** Matches that are a policy decision about a new connection (not a known connection's packet). */
export function isPolicyDecision(match: number): boolean {
  return match !== 7 && match !== 8;
}

/** WEIR_DIR_* -> "ingress" | "egress". */
export function directionName(code: number): 'ingress' | 'egress' {
  return code === 0 ? 'ingress' : 'egress';
}

/** Hubble's monitor message types used in CiliumEventType.type. */
export const EVENT_TYPE = { drop: 1, policyVerdict: 5 } as const;

/** `--type` values -> CiliumEventType.type. */
export const EVENT_TYPE_NAMES: Readonly<Record<string, number>> = {
  drop: EVENT_TYPE.drop,
  'policy-verdict': EVENT_TYPE.policyVerdict,
};

export function eventTypeName(type: number): string {
  for (const [name, v] of Object.entries(EVENT_TYPE_NAMES)) if (v === type) return name;
  return `type-${type}`;
}

/** IP protocol number -> name as in the flow API's Layer4 and `--protocol`. */
export function protocolName(proto: number, family: 4 | 6): string {
  switch (proto) {
    case 6:
      return 'TCP';
    case 17:
      return 'UDP';
    case 132:
      return 'SCTP';
    case 1:
      return 'ICMPv4';
    case 58:
      return 'ICMPv6';
    default:
      return `IP proto ${proto}${family === 6 ? ' (IPv6)' : ''}`;
  }
}
