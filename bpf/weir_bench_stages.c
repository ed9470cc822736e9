// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Stage table of the datapath for `make bench` (test/bench/datapath.ts): the
 * `to_pod` verdict cut after each stage, so the difference between two
 * consecutive programs is what one stage costs. Built from the datapath itself
 * (weir.c with the conntrack insert compiled out, as weir_bench_verdict.c, so a
 * new connection repeats in place), sharing its pinned maps; its `to_pod` is the
 * uncut reference. Never loaded by the agent.
 *
 * Each stage's result is kept alive with an empty asm statement (WEIR_KEEP), so
 * the compiler cannot drop work whose result a cut program does not use.
 */
#define WEIR_BENCH_NO_CT_INSERT
#include "weir.c"

#define WEIR_KEEP(p) asm volatile("" : : "r"(p) : "memory")

enum weir_stage {
	WEIR_STAGE_PARSE = 1, /* headers parsed into the tuple */
	WEIR_STAGE_KEY,	      /* conntrack key built */
	WEIR_STAGE_CLOCK,     /* conntrack clock read (jiffies) */
	WEIR_STAGE_LOOKUP,    /* conntrack lookup (hit or miss) */
	WEIR_STAGE_STAMP,     /* hit: deadline, flags and policy_rev stamp checked */
	WEIR_STAGE_TOUCH,     /* hit: deadline, flags and packet count updated */
	WEIR_STAGE_ENDPOINT,  /* miss: endpoint record read */
	WEIR_STAGE_IPCACHE,   /* miss: the remote address's identity */
	WEIR_STAGE_POLICY,    /* miss: policy lookups */
	WEIR_STAGE_EVENT,     /* miss: flow event written */
	WEIR_STAGE_ALL,	      /* + the counter: the whole verdict */
};

/* The ingress verdict of weir_handle for a TCP packet, cut after `stop`. */
static __always_inline int weir_stages(struct __sk_buff *skb, const int stop)
{
	const __u8 dir = WEIR_DIR_INGRESS;
	__u32 ifindex = skb->ifindex;
	struct weir_verdict v = {};
	struct weir_pkt pkt = {};
	union weir_ct_anykey key;

	if (weir_parse(skb, &pkt) || pkt.kind == WEIR_PKT_ALWAYS || pkt.frag)
		return TC_ACT_SHOT; /* the bench sends plain TCP only */
	WEIR_KEEP(&pkt);
	if (stop == WEIR_STAGE_PARSE)
		return TC_ACT_OK;
	weir_ct_key_fwd(&key, &pkt.t, dir, ifindex);
	WEIR_KEEP(&key);
	if (stop == WEIR_STAGE_KEY)
		return TC_ACT_OK;
	__u64 now = weir_ct_now();
	WEIR_KEEP(now);
	if (stop == WEIR_STAGE_CLOCK)
		return TC_ACT_OK;
	struct weir_ct_value *ct = weir_ct_lookup(&key, pkt.t.family);
	WEIR_KEEP(ct);
	if (stop == WEIR_STAGE_LOOKUP)
		return TC_ACT_OK;
	if (ct && ct->expires_ns <= now)
		ct = NULL;
	if (ct) {
		int restart = (pkt.tcp_flags & (WEIR_TCP_SYN | WEIR_TCP_ACK)) == WEIR_TCP_SYN &&
			      (ct->flags & WEIR_CT_F_CLOSING);
		int current = !restart && !(ct->flags & WEIR_CT_F_REVOKED) && weir_ct_stamp_current(ct);
		WEIR_KEEP(current);
		if (stop == WEIR_STAGE_STAMP)
			return TC_ACT_OK;
		if (!current)
			return TC_ACT_SHOT; /* the bench's established packet is always current */
		weir_ct_touch(ct, &pkt, now, 0);
		if (stop == WEIR_STAGE_TOUCH)
			return TC_ACT_OK;
		return weir_pass(skb, dir, WEIR_MATCH_ESTABLISHED);
	}
	if ((pkt.tcp_flags & (WEIR_TCP_SYN | WEIR_TCP_ACK)) != WEIR_TCP_SYN)
		return TC_ACT_SHOT; /* the bench's new connection is a bare SYN: no reply lookup */
	struct weir_endpoint *ep = weir_endpoint(ifindex);
	if (!ep)
		return TC_ACT_SHOT;
	if (stop == WEIR_STAGE_ENDPOINT)
		return TC_ACT_OK;
	weir_identities(ep, dir, &pkt.t, &v);
	WEIR_KEEP(&v);
	if (stop == WEIR_STAGE_IPCACHE)
		return TC_ACT_OK;
	const struct weir_lb no_lb = {};
	v.match = weir_judge(ep, dir, &pkt, &v, &no_lb);
	WEIR_KEEP(&v);
	if (stop == WEIR_STAGE_POLICY)
		return TC_ACT_OK;
	if (v.match == WEIR_MATCH_NONE)
		return TC_ACT_SHOT; /* the bench's new connection is allowed */
	v.flags = WEIR_FLOW_F_NEW;
	v.verdict = WEIR_VERDICT_FORWARDED;
	weir_emit_allowed(skb, ep, dir, &pkt, &v);
	if (stop == WEIR_STAGE_EVENT)
		return TC_ACT_OK;
	return weir_pass(skb, dir, v.match);
}

/* One program per cut: STOP_AFTER(name, stage). */
#define STOP_AFTER(name, stage)                                                                              \
	SEC("tc") int name(struct __sk_buff *skb)                                                            \
	{                                                                                                    \
		return weir_stages(skb, WEIR_STAGE_##stage);                                                 \
	}

STOP_AFTER(stage_parse, PARSE)
STOP_AFTER(stage_key, KEY)
STOP_AFTER(stage_clock, CLOCK)
STOP_AFTER(stage_lookup, LOOKUP)
STOP_AFTER(stage_stamp, STAMP)
STOP_AFTER(stage_touch, TOUCH)
STOP_AFTER(stage_endpoint, ENDPOINT)
STOP_AFTER(stage_ipcache, IPCACHE)
STOP_AFTER(stage_policy, POLICY)
STOP_AFTER(stage_event, EVENT)
STOP_AFTER(stage_all, ALL)
