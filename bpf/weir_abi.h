/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * weir datapath ABI: the one header shared by the C programs and, through the
 * codecs in maps/, by the TypeScript control plane. Every map key and value,
 * the flow event record and every constant the two sides exchange lives here.
 * A test (test/unit/abi.test.ts) checks the TypeScript codecs against this file.
 */
#ifndef WEIR_ABI_H
#define WEIR_ABI_H

#ifndef __u8
#include <linux/types.h>
#endif

/* ---- identities (Cilium-compatible numbering) ---- */
#define WEIR_ID_ANY            0   /* wildcard in policy keys; "unknown" elsewhere */
#define WEIR_ID_HOST           1
#define WEIR_ID_WORLD          2
#define WEIR_ID_UNMANAGED      3
#define WEIR_ID_HEALTH         4
#define WEIR_ID_INIT           5
#define WEIR_ID_REMOTE_NODE    6
#define WEIR_ID_KUBE_APISERVER 7
#define WEIR_ID_CLUSTER_MIN    256
#define WEIR_ID_LOCAL_SCOPE    (1U << 24) /* node-local CIDR identities have this bit */

/* ---- directions: always seen from the pod ---- */
#define WEIR_DIR_INGRESS 0 /* to_pod: tc egress of the host-side veth */
#define WEIR_DIR_EGRESS  1 /* from_pod: tc ingress of the host-side veth */
#define WEIR_DIR_MAX     2

/* ---- verdicts ---- */
#define WEIR_VERDICT_FORWARDED 0
#define WEIR_VERDICT_DROPPED   1
#define WEIR_VERDICT_MAX       2

/* ---- how a packet's verdict was reached (Hubble's policy match types, plus ours) ---- */
#define WEIR_MATCH_NONE          0 /* denied: no rule matched */
#define WEIR_MATCH_L3_L4         1 /* rule with this identity and this port */
#define WEIR_MATCH_L3_ONLY       2 /* rule with this identity, any port */
#define WEIR_MATCH_L4_ONLY       3 /* rule with any identity, this port */
#define WEIR_MATCH_ALL           4 /* rule with any identity and any port */
#define WEIR_MATCH_NOT_ISOLATED  5 /* the pod is not isolated in this direction */
#define WEIR_MATCH_HOST          6 /* node traffic allowed by the host switch */
#define WEIR_MATCH_ESTABLISHED   7 /* packet of a known connection (either direction) */
#define WEIR_MATCH_RELATED       8 /* ICMP error related to a known connection */
#define WEIR_MATCH_ALWAYS        9 /* neighbour discovery and similar, never policed */
#define WEIR_MATCH_MAX          16

/* ---- drop reasons (0 = not dropped) ---- */
#define WEIR_DROP_NONE            0
#define WEIR_DROP_POLICY_DENIED   1 /* new connection, no rule allows it */
#define WEIR_DROP_POLICY_REVOKED  2 /* known connection, its allow was removed */
#define WEIR_DROP_TRUNCATED       3 /* headers shorter than their own length fields say */
#define WEIR_DROP_MALFORMED       4 /* impossible header values (IHL < 5, bad version, ...) */
#define WEIR_DROP_FRAG_UNKNOWN    5 /* non-first fragment whose first fragment was not seen */
#define WEIR_DROP_UNSUPPORTED_L3  6 /* neither IPv4, IPv6 nor ARP from an enforced pod */
#define WEIR_DROP_CT_FULL         7 /* a conntrack entry could not be created */
#define WEIR_DROP_MAX            32

/* ---- flow event flags ---- */
#define WEIR_FLOW_F_REPLY     (1 << 0) /* packet travels reply-wise on its connection */
#define WEIR_FLOW_F_NEW       (1 << 1) /* first packet of a new connection */
#define WEIR_FLOW_F_FRAGMENT  (1 << 2)

#define WEIR_FAMILY_IPV4 4
#define WEIR_FAMILY_IPV6 6

/*
 * One record per new connection (allowed or denied) and per dropped packet;
 * never per packet of an established flow. Addresses are network byte order
 * (IPv4 in the first 4 bytes); ports are host byte order. For ICMP and ICMPv6,
 * src_port holds the type and dst_port the code.
 */
struct weir_flow_event {
	__u64 ts_ns;        /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 ifindex;      /* host-side veth */
	__u32 endpoint_id;
	__u32 src_identity;
	__u32 dst_identity;
	__u8  src_addr[16];
	__u8  dst_addr[16];
	__u16 src_port;
	__u16 dst_port;
	__u8  family;       /* WEIR_FAMILY_* */
	__u8  protocol;     /* IPPROTO_* */
	__u8  direction;    /* WEIR_DIR_* */
	__u8  verdict;      /* WEIR_VERDICT_* */
	__u8  match;        /* WEIR_MATCH_* */
	__u8  drop_reason;  /* WEIR_DROP_* */
	__u8  tcp_flags;    /* FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 */
	__u8  flags;        /* WEIR_FLOW_F_* */
	__u32 len;          /* skb length */
	__u32 _pad;
};

/*
 * Counters: a per-CPU array indexed by WEIR_COUNTER_INDEX(direction, verdict, reason).
 * For forwarded packets `reason` is the WEIR_MATCH_* kind; for dropped ones the WEIR_DROP_*.
 */
#define WEIR_COUNTER_INDEX(dir, verdict, reason) (((dir) * WEIR_VERDICT_MAX + (verdict)) * WEIR_DROP_MAX + (reason))
#define WEIR_COUNTER_ENTRIES (WEIR_DIR_MAX * WEIR_VERDICT_MAX * WEIR_DROP_MAX)

struct weir_counter {
	__u64 packets;
	__u64 bytes;
};

#endif /* WEIR_ABI_H */
