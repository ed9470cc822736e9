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
#define WEIR_ID_ANY	       0 /* wildcard in policy keys; "unknown" elsewhere */
#define WEIR_ID_HOST	       1
#define WEIR_ID_WORLD	       2 /* an address the ipcache does not know (yet) */
#define WEIR_ID_UNMANAGED      3
#define WEIR_ID_HEALTH	       4
#define WEIR_ID_INIT	       5
#define WEIR_ID_REMOTE_NODE    6
#define WEIR_ID_KUBE_APISERVER 7
#define WEIR_ID_WORLD_IPV4     9  /* 0.0.0.0/0 outside every named prefix */
#define WEIR_ID_WORLD_IPV6     10 /* ::/0 outside every named prefix */
#define WEIR_ID_CLUSTER_MIN    256
#define WEIR_ID_LOCAL_SCOPE    (1U << 24) /* node-local CIDR identities have this bit */

/* ---- directions: always seen from the pod ---- */
#define WEIR_DIR_INGRESS 0 /* to_pod: tc egress of the host-side veth */
#define WEIR_DIR_EGRESS	 1 /* from_pod: tc ingress of the host-side veth */
#define WEIR_DIR_MAX	 2

/* ---- verdicts ---- */
#define WEIR_VERDICT_FORWARDED 0
#define WEIR_VERDICT_DROPPED   1
#define WEIR_VERDICT_MAX       2

/* ---- how a packet's verdict was reached (Hubble's policy match types, plus ours) ---- */
#define WEIR_MATCH_NONE		0 /* denied: no rule matched */
#define WEIR_MATCH_L3_L4	1 /* rule with this identity and this port */
#define WEIR_MATCH_L3_ONLY	2 /* rule with this identity, any port */
#define WEIR_MATCH_L4_ONLY	3 /* rule with any identity, this port */
#define WEIR_MATCH_ALL		4 /* rule with any identity and any port */
#define WEIR_MATCH_NOT_ISOLATED 5 /* the pod is not isolated in this direction */
#define WEIR_MATCH_HOST		6 /* node traffic allowed by the host switch */
#define WEIR_MATCH_ESTABLISHED	7 /* packet of a known connection (either direction) */
#define WEIR_MATCH_RELATED	8 /* ICMP error related to a known connection */
#define WEIR_MATCH_ALWAYS	9 /* neighbour discovery and similar, never policed */
#define WEIR_MATCH_MAX		16

/* ---- drop reasons (0 = not dropped) ---- */
#define WEIR_DROP_NONE		     0
#define WEIR_DROP_POLICY_DENIED	     1	/* new connection, no rule allows it */
#define WEIR_DROP_POLICY_REVOKED     2	/* known connection, its allow was removed */
#define WEIR_DROP_TRUNCATED	     3	/* headers shorter than their own length fields say */
#define WEIR_DROP_MALFORMED	     4	/* impossible header values (IHL < 5, bad version, ...) */
#define WEIR_DROP_FRAG_UNKNOWN	     5	/* non-first fragment whose first fragment was not seen */
#define WEIR_DROP_UNSUPPORTED_L3     6	/* neither IPv4, IPv6 nor ARP from an enforced pod */
#define WEIR_DROP_CT_FULL	     7	/* a conntrack entry could not be created */
#define WEIR_DROP_NO_ENDPOINT	     8	/* an interface weir is attached to holds no endpoint record */
#define WEIR_DROP_INVALID_SOURCE     9	/* from a pod, with a source address that is not the pod's */
#define WEIR_DROP_CT_BUDGET	     10 /* the endpoint opened new connections faster than its budget */
#define WEIR_DROP_NO_SERVICE_BACKEND 11 /* to a Service frontend that has no backend */
#define WEIR_DROP_SERVICE_UNSUPPORTED                                                                        \
	12 /* a Service translation weir refuses (SCTP to another port, SCTP masqueraded) */
#define WEIR_DROP_NAT_NO_PORT 13 /* NodePort masquerade: no free source port for the connection */
#define WEIR_DROP_MAX	      32

/* ---- flow event flags ---- */
#define WEIR_FLOW_F_REPLY    (1 << 0) /* packet travels reply-wise on its connection */
#define WEIR_FLOW_F_NEW	     (1 << 1) /* first packet of a new connection */
#define WEIR_FLOW_F_FRAGMENT (1 << 2)
#define WEIR_FLOW_F_SERVICE  (1 << 3) /* sent to a Service frontend: orig_addr/orig_port hold it */

#define WEIR_FAMILY_IPV4 4
#define WEIR_FAMILY_IPV6 6

/*
 * One record per new connection (allowed or denied) and per dropped packet;
 * never per packet of an established flow. Addresses are network byte order
 * (IPv4 in the first 4 bytes); ports are host byte order. For ICMP and ICMPv6,
 * src_port holds the type and dst_port the code.
 */
struct weir_flow_event {
	/*
	 * The kernel's tick count (bpf_jiffies64(): inlined, no helper call); the
	 * agent turns it into CLOCK_MONOTONIC ns with the scale and offset the
	 * program clock_sample gives it (struct weir_clock_sample).
	 */
	__u64 ts_jiffies;
	__u32 ifindex; /* host-side veth */
	__u32 endpoint_id;
	__u32 src_identity;
	__u32 dst_identity;
	__u8 src_addr[16];
	__u8 dst_addr[16];
	__u16 src_port;
	__u16 dst_port;
	__u8 family;	  /* WEIR_FAMILY_* */
	__u8 protocol;	  /* IPPROTO_* */
	__u8 direction;	  /* WEIR_DIR_* */
	__u8 verdict;	  /* WEIR_VERDICT_* */
	__u8 match;	  /* WEIR_MATCH_* */
	__u8 drop_reason; /* WEIR_DROP_* */
	__u8 tcp_flags;	  /* FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 */
	__u8 flags;	  /* WEIR_FLOW_F_* */
	__u32 len;	  /* skb length */
	__u32 _pad;
	/*
	 * WEIR_FLOW_F_SERVICE: the Service frontend (VIP, port) the pod addressed;
	 * dst_addr/dst_port are then the backend it was translated to (or the
	 * frontend again when no backend was chosen). Zero otherwise.
	 */
	__u8 orig_addr[16];
	__u16 orig_port;
	__u16 _pad2;
	__u32 _pad3;
};

/*
 * What clock_sample writes over the first bytes of its test-run packet: the
 * tick count before and after CLOCK_MONOTONIC_COARSE (which moves on ticks),
 * and the ns per tick (0: the kernel's tick rate is unknown to the loader).
 * A flow event's ts_jiffies in CLOCK_MONOTONIC ns is then
 * mono_ns + (ts_jiffies - jiffies) * ns_per_tick; a sample whose two tick
 * counts differ is taken again.
 */
struct weir_clock_sample {
	__u64 jiffies;
	__u64 mono_ns;
	__u64 jiffies_after;
	__u64 ns_per_tick;
};

/*
 * Counters: a per-CPU array indexed by WEIR_COUNTER_INDEX(direction, verdict, reason).
 * For forwarded packets `reason` is the WEIR_MATCH_* kind; for dropped ones the WEIR_DROP_*.
 */
#define WEIR_COUNTER_INDEX(dir, verdict, reason)                                                             \
	(((dir)*WEIR_VERDICT_MAX + (verdict)) * WEIR_DROP_MAX + (reason))
#define WEIR_COUNTER_ENTRIES (WEIR_DIR_MAX * WEIR_VERDICT_MAX * WEIR_DROP_MAX)

struct weir_counter {
	__u64 packets;
	__u64 bytes;
};

/* ======================================================================
 * Maps (names as pinned under the pin root, default /sys/fs/bpf/weir)
 * ====================================================================== */

/* ---- endpoints: HASH, key __u32 host-side ifindex ---- */
#define WEIR_ENDPOINTS_MAX 4096

#define WEIR_EP_F_INGRESS_ISOLATED (1U << 0)
#define WEIR_EP_F_EGRESS_ISOLATED  (1U << 1)
/*
 * Which kinds of policy entries an endpoint has, per direction, so the
 * datapath skips lookups that cannot match. Kinds are shifted by
 * WEIR_EP_KINDS_SHIFT(direction).
 */
#define WEIR_KIND_ID_PORT	 (1U << 0) /* identity, protocol, port */
#define WEIR_KIND_ID_PROTO	 (1U << 1) /* identity, protocol, every port */
#define WEIR_KIND_ID_ALL	 (1U << 2) /* identity, any protocol */
#define WEIR_KIND_ID_RANGE	 (1U << 3) /* identity, protocol, port range */
#define WEIR_KIND_ANY_PORT	 (1U << 4) /* any identity, protocol, port */
#define WEIR_KIND_ANY_PROTO	 (1U << 5) /* any identity, protocol, every port */
#define WEIR_KIND_ANY_ALL	 (1U << 6) /* any identity, any protocol */
#define WEIR_KIND_ANY_RANGE	 (1U << 7) /* any identity, protocol, port range */
#define WEIR_EP_KINDS_SHIFT(dir) (8U + 8U * (dir))

struct weir_endpoint {
	__u32 endpoint_id; /* 1.. assigned by the reconciler */
	__u32 identity;	   /* the pod's security identity */
	__u32 policy_rev;  /* bumped whenever entries, isolation or addresses change */
	__u32 flags;	   /* WEIR_EP_F_* | kinds << WEIR_EP_KINDS_SHIFT(dir) */
	/*
	 * The pod's addresses (network byte order; all zero: none of that
	 * family). A packet from the pod with any other source is dropped
	 * (WEIR_DROP_INVALID_SOURCE), except neighbour discovery from a
	 * link-local or the unspecified address, and ARP.
	 */
	__u8 ipv4[4];
	__u8 ipv6[16];
};

/*
 * ep_rev: ARRAY indexed by endpoint id holding each endpoint's policy_rev, so
 * the established path checks a connection's stamp with one inlined array
 * read instead of a hash lookup. The reconciler writes it after the endpoint
 * record; 0 = no endpoint (revisions start at 1). A torn read can only differ
 * from the stamp, which sends the packet to the full check: safe.
 */
#define WEIR_ENDPOINT_IDS (WEIR_ENDPOINTS_MAX * 4) /* endpoint ids are 1 .. WEIR_ENDPOINT_IDS - 1 */

/* ---- ipcache: HASH of exact addresses, then LPM of prefixes, else world ---- */
#define WEIR_IPCACHE_MAX     (1U << 20)
#define WEIR_IPCACHE_LPM_MAX (1U << 16)

struct weir_ipcache_key { /* exact /32 or /128 */
	__u32 family;	  /* WEIR_FAMILY_* */
	__u8 addr[16];	  /* network byte order, IPv4 in the first 4 bytes */
};

/* LPM key: prefixlen counts bits after itself: 32 (family) + prefix length */
#define WEIR_IPCACHE_LPM_PREFIX_BASE 32
struct weir_ipcache_lpm_key {
	__u32 prefixlen;
	__u32 family; /* big-endian WEIR_FAMILY_* so it is matched as bytes */
	__u8 addr[16];
};

struct weir_ipcache_value {
	__u32 identity;
	__u32 flags; /* reserved, 0 */
};

/* ---- policy: HASH, every key exact; wildcards are explicit zeros ---- */
#define WEIR_POLICY_MAX	      (1U << 18)
#define WEIR_POLICY_RANGE_MAX (1U << 16)

struct weir_policy_key {
	__u32 endpoint_id;
	__u32 identity; /* remote identity, WEIR_ID_ANY = any */
	__u8 direction; /* WEIR_DIR_* */
	__u8 protocol;	/* IPPROTO_*, 0 = any protocol (port is then 0) */
	__u16 port;	/* host byte order, 0 = every port of the protocol */
};

#define WEIR_POLICY_F_ALLOW (1U << 0)
struct weir_policy_value {
	__u32 flags; /* WEIR_POLICY_F_* */
	__u32 _pad;
};

/*
 * Port ranges (endPort): LPM over (endpoint, identity, direction, protocol,
 * port) where the port is big-endian; a range is stored as the prefix blocks
 * that cover it. prefixlen = WEIR_POLICY_RANGE_PREFIX_BASE + port prefix bits.
 */
#define WEIR_POLICY_RANGE_PREFIX_BASE 80
struct weir_policy_range_key {
	__u32 prefixlen;
	__u32 endpoint_id; /* big-endian */
	__u32 identity;	   /* big-endian */
	__u8 direction;
	__u8 protocol;
	__u16 port; /* big-endian */
};

/* ---- conntrack: LRU HASH ---- */
#define WEIR_CT_MAX (1U << 18)

/* Timeouts in seconds (Cilium's defaults, closing shortened). */
#define WEIR_CT_TIMEOUT_TCP_SYN		60
#define WEIR_CT_TIMEOUT_TCP_ESTABLISHED 21600
#define WEIR_CT_TIMEOUT_TCP_CLOSING	10
#define WEIR_CT_TIMEOUT_UDP		60
#define WEIR_CT_TIMEOUT_ICMP		30
#define WEIR_CT_TIMEOUT_OTHER		60
#define WEIR_CT_TIMEOUT_REVOKED		10 /* tombstone of a revoked connection */
/* an entry's expiry is refreshed at most this often (ns) */
#define WEIR_CT_REFRESH_NS 1000000000ULL

/*
 * A connection as its first packet saw it, on the interface that judged it.
 * `direction` and `ifindex` are the judging endpoint's, so the two endpoints
 * of a pod-to-pod connection on one node each keep (and judge) their own
 * entry, and a copy of a packet seen on another interface (a flooding bridge,
 * a spoofing pod) never touches it.
 */
struct weir_ct_key {
	__u8 src_addr[16];
	__u8 dst_addr[16];
	__u16 src_port; /* host byte order; ICMP echo: id (request side) */
	__u16 dst_port;
	__u8 protocol;
	__u8 family;
	__u8 direction;
	__u8 _pad;
	__u32 ifindex;
};

/*
 * IPv4 connections live in their own map (weir_ct4) under this 20-byte key:
 * hashing and comparing the 44-byte key costs about 8 ns more per lookup, on
 * every packet. Same fields and meaning as weir_ct_key; IPv6 stays in weir_ct.
 */
struct weir_ct4_key {
	__u8 src_addr[4]; /* network byte order */
	__u8 dst_addr[4];
	__u16 src_port; /* host byte order; ICMP echo: id (request side) */
	__u16 dst_port;
	__u8 protocol;
	__u8 direction;
	__u16 _pad;
	__u32 ifindex;
};

#define WEIR_CT_F_SEEN_REPLY (1U << 0)
#define WEIR_CT_F_CLOSING    (1U << 1) /* FIN or RST seen */
#define WEIR_CT_F_REVOKED    (1U << 2) /* tombstone: its allow was removed */
#define WEIR_CT_F_SERVICE    (1U << 3) /* a pod's connection sent to a Service frontend: replies get it back */
#define WEIR_CT_F_NOT_LOCAL  (1U << 4) /* from_pod's packets of it do not go to a local pod: no FIB lookup */

struct weir_ct_value {
	__u64 expires_ns; /* deadline on the conntrack clock (jiffies scaled to ns, see lib/conntrack.h) */
	__u64 packets;	  /* forward + reply */
	__u32 policy_rev; /* endpoint's policy_rev when last judged */
	__u32 remote_identity;
	__u32 endpoint_id; /* the endpoint that judged it (index into weir_ep_rev) */
	__u8 flags;	   /* WEIR_CT_F_* */
	__u8 match;	   /* WEIR_MATCH_* of the verdict that allowed it */
	__u8 tcp_flags;	   /* union of TCP flags seen */
	__u8 _pad;
};

/*
 * Conntrack budget: ARRAY indexed by endpoint id holding one __u64, the
 * endpoint's theoretical arrival time (GCRA) on the conntrack clock. Each new
 * conntrack entry an endpoint creates moves it on by WEIR_CT_BUDGET_INTERVAL_NS;
 * an entry that would move it more than WEIR_CT_BUDGET_BURST intervals past
 * now is refused (WEIR_DROP_CT_BUDGET). So one endpoint creates at most
 * BURST + RATE * t entries in t seconds, far below WEIR_CT_MAX over the time
 * an idle connection waits, and cannot push the node's other connections out
 * of the LRU tables. Written only by the datapath.
 */
#define WEIR_CT_BUDGET_RATE	   5000 /* new connections per second per endpoint */
#define WEIR_CT_BUDGET_BURST	   20000
#define WEIR_CT_BUDGET_INTERVAL_NS (1000000000ULL / WEIR_CT_BUDGET_RATE)

/* ---- fragments: LRU HASH remembering the first fragment's ports ---- */
#define WEIR_FRAG_MAX 8192
struct weir_frag_key {
	__u8 src_addr[16];
	__u8 dst_addr[16];
	__u32 id; /* IPv4 id or IPv6 fragment identification */
	__u8 protocol;
	__u8 family;
	__u16 _pad;
};
struct weir_frag_value {
	__u16 src_port;
	__u16 dst_port;
	__u32 _pad;
};

/* ---- config: ARRAY with one struct weir_config at index 0 ---- */
#define WEIR_CFG_F_HOST_ALLOW (1U << 0) /* the node (identity host) may reach its pods */
/*
 * Allowed new connections emit no flow event (they are still counted in
 * weir_counters); denied and dropped packets always emit theirs. Off by
 * default: `weir observe` shows allowed flows unless the agent is told not to.
 */
#define WEIR_CFG_F_NO_ALLOWED_FLOWS (1U << 1)
/*
 * No local delivery (bpf/lib/forward.h): a packet between two pods of the
 * node goes through the node's IP stack and netfilter, as without weir. Off
 * by default: local delivery is on unless the agent is told otherwise.
 */
#define WEIR_CFG_F_NO_LOCAL_DELIVERY (1U << 2)
#define WEIR_CFG_DEFAULT_FLAGS	     WEIR_CFG_F_HOST_ALLOW
/* When the config flags are 0 the datapath applies WEIR_CFG_DEFAULT_FLAGS;
 * WEIR_CFG_F_SET marks an explicit setting so "all off" is expressible. */
#define WEIR_CFG_F_SET (1U << 31)
struct weir_config {
	__u32 flags;
	__u32 _pad;
};

/* ---- events ring buffer and its lost-event counter (per-CPU ARRAY, 1 x __u64) ---- */
#define WEIR_EVENTS_RING_BYTES (1U << 22)
/*
 * Events are submitted without waking the reader (a wakeup is an interrupt,
 * costly in VMs) until this much is waiting; the reader also polls on a timer.
 */
#define WEIR_EVENTS_WAKEUP_BYTES (WEIR_EVENTS_RING_BYTES / 16)
#define WEIR_RINGBUF_HDR_BYTES	 8 /* BPF_RINGBUF_HDR_SZ: each record's header in the ring */

/* ======================================================================
 * Services (bpf/lib/lb.h): frontends, backends and the per-connection
 * translation state. The syncer writes weir_svc and weir_svc_be; the
 * datapath alone writes weir_lb_fwd, weir_lb_rev and weir_lb_aff.
 * ====================================================================== */
#define WEIR_SVC_MAX	      (1U << 16) /* frontends */
#define WEIR_SVC_BE_MAX	      (1U << 18) /* backend slots, every frontend's together */
#define WEIR_LB_CT_MAX	      (1U << 18) /* translated connections (each in weir_lb_fwd and weir_lb_rev) */
#define WEIR_LB_AFF_MAX	      (1U << 16) /* ClientIP affinity entries */
#define WEIR_SVC_BACKENDS_MAX 0xffff	 /* backends of one frontend */

#define WEIR_SVC_SCOPE_CLUSTER_IP 0 /* the frontend's own address (a ClusterIP) */
#define WEIR_SVC_SCOPE_NODE_PORT  1 /* every address of this node: addr is all zero */

/* frontend: (address, port, protocol, family, scope) */
struct weir_svc_key {
	__u8 addr[16]; /* network byte order, IPv4 in the first 4 bytes; zero for a NodePort */
	__u16 port;    /* host byte order */
	__u8 protocol; /* IPPROTO_TCP, _UDP, _SCTP */
	__u8 family;   /* WEIR_FAMILY_* */
	__u8 scope;    /* WEIR_SVC_SCOPE_* */
	__u8 _pad[3];
};

#define WEIR_SVC_F_AFFINITY (1U << 0) /* sessionAffinity ClientIP */
#define WEIR_SVC_F_EXTERNAL_LOCAL                                                                            \
	(1U << 1) /* NodePort, externalTrafficPolicy Local: keep the client's source */

struct weir_svc_value {
	__u32 svc_id; /* the frontend's number on this node, stable while it exists (affinity is keyed by it) */
	__u32 backend_set; /* the backends' set in weir_svc_be: a new number for each new set, never reused */
	__u16 count; /* backends 0 .. count - 1 of the set; 0 = drop with WEIR_DROP_NO_SERVICE_BACKEND */
	__u8 flags;  /* WEIR_SVC_F_* */
	__u8 _pad;
	__u32 affinity_timeout; /* seconds (WEIR_SVC_F_AFFINITY) */
};

struct weir_svc_be_key {
	__u32 backend_set;
	__u32 slot; /* 0 .. count - 1 */
};

/* the backend runs on another node: a NodePort connection to it (Cluster) is masqueraded */
#define WEIR_SVC_BE_F_REMOTE (1U << 0)

struct weir_svc_be_value {
	__u8 addr[16]; /* the backend pod's address, same family as the frontend */
	__u16 port;    /* host byte order: the targetPort */
	__u8 family;
	__u8 flags; /* WEIR_SVC_BE_F_* */
	__u32 _pad2;
};

/*
 * Translated connections, keyed like conntrack but with one key for both
 * families: a = the packet's source, b = its destination, on the client's
 * host-side interface. weir_lb_fwd: the client's packet to the frontend ->
 * the backend chosen for it; weir_lb_rev: the backend's reply as it reaches
 * the client (after hairpin: from the client's own address) -> the frontend
 * to put back as its source.
 */
struct weir_lb_key {
	__u8 a_addr[16];
	__u8 b_addr[16];
	__u16 a_port;
	__u16 b_port;
	__u8 protocol;
	__u8 family;
	__u16 _pad;
	__u32 ifindex;
};

/* the client is its own backend: source rewritten to the hairpin address */
#define WEIR_LB_F_HAIRPIN (1U << 0)
/* NodePort, Cluster, a backend on another node: the connection is masqueraded (weir_nat) */
#define WEIR_LB_F_SNAT (1U << 1)

struct weir_lb_fwd_value {
	__u8 addr[16]; /* backend */
	__u16 port;
	__u16 slot;	   /* its slot in backend_set when chosen */
	__u32 backend_set; /* the set it was chosen from */
	__u32 svc_id;
	__u32 flags; /* WEIR_LB_F_* */
};

struct weir_lb_rev_value {
	__u8 addr[16]; /* frontend (VIP) */
	__u16 port;
	__u16 _pad;
	__u32 flags; /* WEIR_LB_F_* */
};

/*
 * NodePort masquerade (externalTrafficPolicy Cluster, backend on another
 * node), as kube-proxy's MASQUERADE does it: the client's connection leaves
 * this node from the node address the client addressed and a source port the
 * datapath allocates, so the backend's reply comes back here. weir_nat (LRU
 * HASH, written only by the datapath) holds both halves under weir_lb_key,
 * each on the external interface that received the connection:
 * - forward: (client, backend) -> (node address, allocated port), applied by
 *   `to_node` to the translated packet as it leaves the node;
 * - reverse: (backend, node address, allocated port) -> (client, client
 *   port), applied by `from_node` to the backend's reply; the reply then
 *   leaves with the NodePort as its source like a local backend's
 *   (weir_lb_rev, on `to_node`).
 * A port is taken from WEIR_NAT_PORT_MIN..MAX (outside Linux's default
 * ephemeral range 32768-60999, so the node's own connections do not collide)
 * by inserting the reverse half with BPF_NOEXIST at a random port, up to
 * WEIR_NAT_PORT_TRIES picks; none free: the packet is dropped
 * (WEIR_DROP_NAT_NO_PORT), never sent on unmasqueraded.
 */
#define WEIR_NAT_MAX	    (WEIR_LB_CT_MAX * 2) /* two halves per connection */
#define WEIR_NAT_PORT_MIN   61000
#define WEIR_NAT_PORT_MAX   65535
#define WEIR_NAT_PORT_TRIES 8

#define WEIR_NAT_F_FORWARD (1U << 0) /* (client, backend) -> the node address and port to use as source */
#define WEIR_NAT_F_REVERSE (1U << 1) /* (backend, node address, port) -> the client to give the reply to */

struct weir_nat_value {
	__u8 addr[16]; /* forward: the node address; reverse: the client's */
	__u16 port;    /* forward: the allocated port; reverse: the client's port */
	__u16 _pad;
	__u32 flags; /* WEIR_NAT_F_* */
};

/* ClientIP affinity: (frontend, client address) -> the backend and when it was last chosen or used */
struct weir_lb_aff_key {
	__u32 svc_id;
	__u8 family;
	__u8 _pad[3];
	__u8 addr[16];
};

struct weir_lb_aff_value {
	__u64 last_ns; /* conntrack clock */
	__u8 addr[16];
	__u16 port;
	__u16 slot;
	__u32 _pad;
};

/*
 * Hairpin: a pod whose connection to a Service is given to itself sees it
 * arrive from this reserved link-local address (Cilium's choice for IPv4;
 * for IPv6 a unique-local address no cluster range uses), never from its own
 * address, which its kernel would drop as a martian. The datapath accepts it
 * on the pod's ingress only for a connection it translated itself.
 */
#define WEIR_HAIRPIN_IPV4    0xa9fe2a01U	   /* 169.254.42.1, host byte order */
#define WEIR_HAIRPIN_IPV6_HI 0xfd00a9fe00000000ULL /* fd00:a9fe::2a01, host byte order halves */
#define WEIR_HAIRPIN_IPV6_LO 0x0000000000002a01ULL

/* Service counters: per-CPU ARRAY of __u64 indexed by WEIR_LB_CNT_* */
#define WEIR_LB_CNT_NEW	       0 /* a backend chosen for a new connection */
#define WEIR_LB_CNT_FORWARD    1 /* packets translated to a backend */
#define WEIR_LB_CNT_REVERSE    2 /* replies translated back to the frontend */
#define WEIR_LB_CNT_HAIRPIN    3 /* connections of a pod given to itself */
#define WEIR_LB_CNT_NO_BACKEND 4 /* packets dropped: the frontend has no backend */
#define WEIR_LB_CNT_SNAT_NEW   5 /* NodePort connections masqueraded (a source port allocated) */
#define WEIR_LB_CNT_SNAT_FULL  6 /* packets dropped: no free masquerade port */
#define WEIR_LB_CNT_MAX	       8

/* ---- packet parsing limits and constants not in the UAPI headers ---- */
#define WEIR_PULL_BYTES	     512 /* headers pulled into the linear area when needed */
#define WEIR_IPV6_EXT_MAX    6	 /* IPv6 extension headers walked before giving up */
#define WEIR_IPV6_EXT_BYTES  384 /* bytes of IPv6 extension headers walked before giving up */
#define WEIR_ICMPV6_ND_FIRST 133 /* router solicitation .. redirect */
#define WEIR_ICMPV6_ND_LAST  137
/* ICMPv4 types (linux/icmp.h pulls in libc socket headers, unusable for -target bpf) */
#define WEIR_ICMP_ECHOREPLY	0
#define WEIR_ICMP_DEST_UNREACH	3
#define WEIR_ICMP_SOURCE_QUENCH 4
#define WEIR_ICMP_REDIRECT	5
#define WEIR_ICMP_ECHO		8
#define WEIR_ICMP_TIME_EXCEEDED 11
#define WEIR_ICMP_PARAMETERPROB 12
/* fragment fields (host byte order) */
#define WEIR_IP_MF	     0x2000 /* IPv4: more fragments */
#define WEIR_IP_OFFSET	     0x1fff /* IPv4: fragment offset */
#define WEIR_IP6_OFFSET_MASK 0xfff8 /* IPv6 fragment header: offset */
#define WEIR_IP6_MF	     0x0001 /* IPv6 fragment header: more fragments */

/* ---- tc: the programs' return codes are TC_ACT_OK / TC_ACT_SHOT ---- */

#endif /* WEIR_ABI_H */
