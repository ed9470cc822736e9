/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Flow events: one per new connection and per dropped packet, into the ring buffer. */
#ifndef WEIR_LIB_EVENTS_H
#define WEIR_LIB_EVENTS_H

#include "maps.h"
#include "parse.h"

/* The Service frontend a packet was sent to, for its flow event (WEIR_FLOW_F_SERVICE; bpf/lib/lb.h). */
struct weir_lb_orig {
	__u8 addr[16];
	__u16 port;
	__u8 svc; /* 1: sent to a frontend */
	__u8 _pad;
};

struct weir_verdict {
	__u32 src_identity;
	__u32 dst_identity;
	__u8 verdict;
	__u8 match;
	__u8 drop_reason;
	__u8 flags;
	/*
	 * The Service frontend the packet was sent to (bpf/lib/lb.h keeps it in
	 * its per-CPU scratch, all zero when none); NULL: none.
	 */
	const struct weir_lb_orig *orig;
};

static __always_inline void weir_emit(struct __sk_buff *skb, const struct weir_endpoint *ep, __u8 dir,
				      const struct weir_pkt *pkt, const struct weir_verdict *v)
{
	struct weir_flow_event *e = bpf_ringbuf_reserve(&weir_events, sizeof(*e), 0);
	if (!e) {
		__u32 zero = 0;
		__u64 *lost = bpf_map_lookup_elem(&weir_ev_lost, &zero);
		if (lost)
			(*lost)++;
		return;
	}
	e->ts_jiffies =
		bpf_jiffies64(); /* inlined; bpf_ktime_get_coarse_ns() is a helper call (~17 ns here) */
	e->ifindex = skb->ifindex;
	e->endpoint_id = ep->endpoint_id;
	e->src_identity = v->src_identity;
	e->dst_identity = v->dst_identity;
	__builtin_memcpy(e->src_addr, pkt->t.saddr, 16);
	__builtin_memcpy(e->dst_addr, pkt->t.daddr, 16);
	if (pkt->t.proto == IPPROTO_ICMP || pkt->t.proto == IPPROTO_ICMPV6) {
		e->src_port = pkt->icmp_type;
		e->dst_port = pkt->icmp_code;
	} else {
		e->src_port = pkt->t.sport;
		e->dst_port = pkt->t.dport;
	}
	e->family = pkt->t.family;
	e->protocol = pkt->t.proto;
	e->direction = dir;
	e->verdict = v->verdict;
	e->match = v->match;
	e->drop_reason = v->drop_reason;
	e->tcp_flags = pkt->tcp_flags;
	e->flags = v->flags | (pkt->frag ? WEIR_FLOW_F_FRAGMENT : 0);
	e->len = skb->len;
	e->_pad = 0;
	if (v->orig) {
		__builtin_memcpy(e->orig_addr, v->orig->addr, 16);
		e->orig_port = v->orig->port;
	} else {
		__builtin_memset(e->orig_addr, 0, 16);
		e->orig_port = 0;
	}
	e->_pad2 = 0;
	e->_pad3 = 0;
	/* wake the reader once, when this record takes the backlog over the mark */
	__u64 avail = bpf_ringbuf_query(&weir_events, BPF_RB_AVAIL_DATA);
	__u64 mine = sizeof(*e) + WEIR_RINGBUF_HDR_BYTES;
	bpf_ringbuf_submit(e, avail >= WEIR_EVENTS_WAKEUP_BYTES && avail < WEIR_EVENTS_WAKEUP_BYTES + mine
				      ? BPF_RB_FORCE_WAKEUP
				      : BPF_RB_NO_WAKEUP);
}

#endif
