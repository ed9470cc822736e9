/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Conntrack: one LRU entry per connection and per enforcing endpoint
 * direction, IPv4 in weir_ct4 (compact key), IPv6 in weir_ct. Forward packets find their entry under their own tuple and
 * direction; replies under the reversed tuple and the other direction.
 */
#ifndef WEIR_LIB_CONNTRACK_H
#define WEIR_LIB_CONNTRACK_H

#include "maps.h"
#include "parse.h"

#define WEIR_NS_PER_SEC 1000000000ULL

/* The kernel's tick rate, from its config (0 when libbpf cannot read the config). */
extern unsigned int CONFIG_HZ __kconfig __weak;

/*
 * Conntrack clock in nanoseconds: jiffies scaled to ns (a plain memory read)
 * when the tick rate is known, else the coarse clock. Only deadlines are
 * compared with it; flow events carry bpf_ktime_get_coarse_ns().
 */
static __always_inline __u64 weir_ct_now(void)
{
	if (CONFIG_HZ)
		return bpf_jiffies64() * (WEIR_NS_PER_SEC / CONFIG_HZ);
	return bpf_ktime_get_coarse_ns();
}
#define WEIR_TCP_FIN 0x01
#define WEIR_TCP_SYN 0x02
#define WEIR_TCP_RST 0x04
#define WEIR_TCP_ACK 0x10

/* A conntrack key of either family: `k4` for IPv4 (map weir_ct4), `k6` for IPv6 (weir_ct). */
union weir_ct_anykey {
	struct weir_ct4_key k4;
	struct weir_ct_key k6;
};

static __always_inline void weir_ct_key_make(union weir_ct_anykey *k, const __u8 *src, const __u8 *dst,
					     __u16 sport, __u16 dport, const struct weir_tuple *t, __u8 dir,
					     __u32 ifindex)
{
	if (t->family == WEIR_FAMILY_IPV4) {
		__builtin_memcpy(k->k4.src_addr, src, 4);
		__builtin_memcpy(k->k4.dst_addr, dst, 4);
		k->k4.src_port = sport;
		k->k4.dst_port = dport;
		k->k4.protocol = t->proto;
		k->k4.direction = dir;
		k->k4._pad = 0;
		k->k4.ifindex = ifindex;
		return;
	}
	__builtin_memcpy(k->k6.src_addr, src, 16);
	__builtin_memcpy(k->k6.dst_addr, dst, 16);
	k->k6.src_port = sport;
	k->k6.dst_port = dport;
	k->k6.protocol = t->proto;
	k->k6.family = t->family;
	k->k6.direction = dir;
	k->k6._pad = 0;
	k->k6.ifindex = ifindex;
}

/* The key of the tuple's own connection (forward direction). */
static __always_inline void weir_ct_key_fwd(union weir_ct_anykey *k, const struct weir_tuple *t, __u8 dir,
					    __u32 ifindex)
{
	weir_ct_key_make(k, t->saddr, t->daddr, t->sport, t->dport, t, dir, ifindex);
}

/* The key of the connection this tuple would be the reply of. */
static __always_inline void weir_ct_key_rev(union weir_ct_anykey *k, const struct weir_tuple *t, __u8 dir,
					    __u32 ifindex)
{
	weir_ct_key_make(k, t->daddr, t->saddr, t->dport, t->sport, t, dir, ifindex);
}

/*
 * Keeps the compiler from merging the two families' map calls into one call
 * on a map pointer chosen at run time: the verifier inlines a lookup only
 * when its call site always sees the same map (else it goes through an
 * indirect call, about 15 ns more here). An empty asm on the result in one
 * branch makes the branches' last instructions differ.
 */
#define WEIR_NO_MERGE(x) asm volatile("" : "+r"(x))

static __always_inline struct weir_ct_value *weir_ct_lookup(const union weir_ct_anykey *k, __u8 family)
{
	struct weir_ct_value *v;
	if (family == WEIR_FAMILY_IPV4) {
		v = bpf_map_lookup_elem(&weir_ct4, &k->k4);
		WEIR_NO_MERGE(v);
		return v;
	}
	return bpf_map_lookup_elem(&weir_ct, &k->k6);
}

static __always_inline long weir_ct_insert(const union weir_ct_anykey *k, __u8 family,
					   const struct weir_ct_value *v)
{
	long err;
	if (family == WEIR_FAMILY_IPV4) {
		err = bpf_map_update_elem(&weir_ct4, &k->k4, v, BPF_ANY);
		WEIR_NO_MERGE(err);
		return err;
	}
	return bpf_map_update_elem(&weir_ct, &k->k6, v, BPF_ANY);
}

static __always_inline __u64 weir_ct_timeout_ns(__u8 proto, __u8 flags)
{
	__u64 s;
	if (proto == IPPROTO_TCP) {
		if (flags & WEIR_CT_F_CLOSING)
			s = WEIR_CT_TIMEOUT_TCP_CLOSING;
		else if (flags & WEIR_CT_F_SEEN_REPLY)
			s = WEIR_CT_TIMEOUT_TCP_ESTABLISHED;
		else
			s = WEIR_CT_TIMEOUT_TCP_SYN;
	} else if (proto == IPPROTO_UDP) {
		s = WEIR_CT_TIMEOUT_UDP;
	} else if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
		s = WEIR_CT_TIMEOUT_ICMP;
	} else {
		s = WEIR_CT_TIMEOUT_OTHER;
	}
	return s * WEIR_NS_PER_SEC;
}

/*
 * Whether a packet with no entry may open a connection: only a bare SYN for
 * TCP and never an echo reply. Other packets are judged one by one, so a pod
 * whose connection was revoked cannot re-open it from its own side by
 * answering (its replies would otherwise look like a new connection whose
 * "replies" are the peer's forward packets).
 */
static __always_inline int weir_opens_connection(const struct weir_pkt *pkt)
{
	if (pkt->t.proto == IPPROTO_TCP)
		return (pkt->tcp_flags & (WEIR_TCP_SYN | WEIR_TCP_ACK)) == WEIR_TCP_SYN;
	if (pkt->t.proto == IPPROTO_ICMP)
		return pkt->icmp_type != WEIR_ICMP_ECHOREPLY;
	if (pkt->t.proto == IPPROTO_ICMPV6)
		return pkt->icmp_type != ICMPV6_ECHO_REPLY;
	return 1;
}

/*
 * Takes one new connection from the endpoint's budget (GCRA over
 * weir_ct_budget): 0 when the endpoint is over it. A race between CPUs can
 * only let a few more through, never refuse one under the budget.
 */
static __always_inline int weir_ct_budget_take(__u32 endpoint_id, __u64 now)
{
	__u64 *tat = bpf_map_lookup_elem(&weir_ct_budget, &endpoint_id);
	__u64 t;
	if (!tat)
		return 0;
	t = *tat > now ? *tat : now;
	if (t - now > WEIR_CT_BUDGET_BURST * WEIR_CT_BUDGET_INTERVAL_NS)
		return 0;
	*tat = t + WEIR_CT_BUDGET_INTERVAL_NS;
	return 1;
}

/* Updates state on a packet of a known connection; `reply` is set for the reply direction. */
static __always_inline void weir_ct_touch(struct weir_ct_value *ct, const struct weir_pkt *pkt, __u64 now,
					  int reply)
{
	__u8 flags = ct->flags;
	if (reply)
		flags |= WEIR_CT_F_SEEN_REPLY;
	if (pkt->tcp_flags & (WEIR_TCP_FIN | WEIR_TCP_RST))
		flags |= WEIR_CT_F_CLOSING;
	if (flags != ct->flags)
		ct->flags = flags;
	if ((pkt->tcp_flags & ~ct->tcp_flags) != 0)
		ct->tcp_flags |= pkt->tcp_flags;
	__u64 deadline = now + weir_ct_timeout_ns(pkt->t.proto, flags);
	/* refresh at most once per WEIR_CT_REFRESH_NS, and always when it shortens (closing) */
	if (deadline > ct->expires_ns + WEIR_CT_REFRESH_NS ||
	    (flags & WEIR_CT_F_CLOSING && deadline < ct->expires_ns))
		ct->expires_ns = deadline;
	ct->packets++;
}

#endif
