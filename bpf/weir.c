// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * weir datapath: `from_pod` on tc ingress of a pod's host-side veth (the pod's
 * egress) and `to_pod` on its tc egress (the pod's ingress). Both run the same
 * stateful verdict with the direction fixed at compile time.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "weir_abi.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/ipcache.h"
#include "lib/policy.h"
#include "lib/conntrack.h"
#include "lib/events.h"
#include "lib/counters.h"
#include "lib/lb.h"

static __always_inline __u32 weir_config_flags(void)
{
	__u32 zero = 0;
	struct weir_config *c = bpf_map_lookup_elem(&weir_config, &zero);
	if (!c || !(c->flags & WEIR_CFG_F_SET))
		return WEIR_CFG_DEFAULT_FLAGS;
	return c->flags;
}

static __always_inline int weir_drop(struct __sk_buff *skb, const struct weir_endpoint *ep, __u8 dir,
				     const struct weir_pkt *pkt, struct weir_verdict *v, __u8 reason)
{
	v->verdict = WEIR_VERDICT_DROPPED;
	v->match = WEIR_MATCH_NONE;
	v->drop_reason = reason;
	weir_count(dir, WEIR_VERDICT_DROPPED, reason, skb->len);
	weir_emit(skb, ep, dir, pkt, v);
	return TC_ACT_SHOT;
}

static __always_inline int weir_pass(struct __sk_buff *skb, __u8 dir, __u8 match)
{
	weir_count(dir, WEIR_VERDICT_FORWARDED, match, skb->len);
	return TC_ACT_OK;
}

/* The remote side's identity for this direction (the pod's own is the endpoint's). */
static __always_inline void weir_identities(const struct weir_endpoint *ep, __u8 dir,
					    const struct weir_tuple *t, struct weir_verdict *v)
{
	if (dir == WEIR_DIR_EGRESS) {
		v->src_identity = ep->identity;
		v->dst_identity = weir_ipcache_identity(t->daddr, t->family);
	} else {
		v->src_identity = weir_ipcache_identity(t->saddr, t->family);
		v->dst_identity = ep->identity;
	}
}

/*
 * Judges a new (or stale) connection against policy and the host switch. A
 * pod's own connection given back to it by its Service (hairpin) is admitted.
 */
static __always_inline __u8 weir_judge(const struct weir_endpoint *ep, __u8 dir, const struct weir_pkt *pkt,
				       const struct weir_verdict *v, const struct weir_lb *lb)
{
	__u32 remote = dir == WEIR_DIR_EGRESS ? v->dst_identity : v->src_identity;
	if (dir == WEIR_DIR_INGRESS && (lb->flags & WEIR_LB_S_HAIRPIN_IN))
		return WEIR_MATCH_ALWAYS;
	if (dir == WEIR_DIR_INGRESS && remote == WEIR_ID_HOST &&
	    (weir_config_flags() & WEIR_CFG_F_HOST_ALLOW))
		return WEIR_MATCH_HOST;
	return weir_policy_verdict(ep, dir, remote, pkt->t.proto, pkt->has_ports ? pkt->t.dport : 0);
}

/*
 * Whether a connection's stamp equals its endpoint's current policy_rev: one
 * inlined array read (weir_ep_rev), no endpoint lookup. A removed endpoint
 * reads 0, which no stamp equals.
 */
static __always_inline int weir_ct_stamp_current(const struct weir_ct_value *ct)
{
	__u32 id = ct->endpoint_id;
	__u32 *rev = bpf_map_lookup_elem(&weir_ep_rev, &id);
	return rev && *rev == ct->policy_rev;
}

/*
 * Whether a packet the pod sent carries one of the pod's own addresses as its
 * source: one compare per family. IPv6 neighbour discovery and MLD may also
 * come from a link-local (fe80::/10) or the unspecified address (DAD).
 */
static __always_inline int weir_source_valid(const struct weir_endpoint *ep, const struct weir_pkt *pkt)
{
	if (pkt->t.family == WEIR_FAMILY_IPV4)
		return *(const __u32 *)pkt->t.saddr == *(const __u32 *)ep->ipv4;
	const __u64 *s = (const __u64 *)pkt->t.saddr;
	const __u64 *a = (const __u64 *)ep->ipv6;
	if (s[0] == a[0] && s[1] == a[1])
		return 1;
	if (pkt->kind != WEIR_PKT_ALWAYS)
		return 0;
	return (pkt->t.saddr[0] == 0xfe && (pkt->t.saddr[1] & 0xc0) == 0x80) || (s[0] == 0 && s[1] == 0);
}

static __always_inline struct weir_endpoint *weir_endpoint(__u32 ifindex)
{
	return bpf_map_lookup_elem(&weir_endpoints, &ifindex);
}

/*
 * A packet of an interface weir is attached to but holds no endpoint record
 * for (its record not written yet, or removed): dropped, never passed. The
 * event carries endpoint id 0.
 */
static __always_inline int weir_no_endpoint(struct __sk_buff *skb, __u8 dir, const struct weir_pkt *pkt,
					    struct weir_verdict *v)
{
	const struct weir_endpoint none = {};
	return weir_drop(skb, &none, dir, pkt, v, WEIR_DROP_NO_ENDPOINT);
}

static __always_inline int weir_handle(struct __sk_buff *skb, const __u8 dir, struct weir_lb *lb)
{
	const __u8 other = dir == WEIR_DIR_EGRESS ? WEIR_DIR_INGRESS : WEIR_DIR_EGRESS;
	__u32 ifindex = skb->ifindex;
	struct weir_endpoint *ep;
	struct weir_verdict v = {};
	struct weir_pkt pkt = {};
	union weir_ct_anykey key;
	struct weir_ct_value *ct = NULL;
	__u64 now;
	int reason;

	reason = weir_parse(skb, &pkt);
	if (reason || pkt.kind == WEIR_PKT_ALWAYS) {
		ep = weir_endpoint(ifindex);
		if (!ep && reason)
			return weir_no_endpoint(skb, dir, &pkt, &v);
		if (reason)
			return weir_drop(skb, ep, dir, &pkt, &v, reason);
		if (ep && dir == WEIR_DIR_EGRESS && pkt.t.family && !weir_source_valid(ep, &pkt))
			goto invalid_source;		       /* ARP has no family here: it passes */
		return weir_pass(skb, dir, WEIR_MATCH_ALWAYS); /* ARP, ND, MLD: as on any endpoint */
	}

	/* fragments: the first one's ports are remembered for the later ones */
	if (pkt.frag) {
		struct weir_frag_key fk = {
			.id = pkt.frag_id, .protocol = pkt.t.proto, .family = pkt.t.family};
		__builtin_memcpy(fk.src_addr, pkt.t.saddr, 16);
		__builtin_memcpy(fk.dst_addr, pkt.t.daddr, 16);
		if (pkt.frag == WEIR_FRAG_FIRST) {
			struct weir_frag_value fv = {.src_port = pkt.t.sport, .dst_port = pkt.t.dport};
			bpf_map_update_elem(&weir_frag, &fk, &fv, BPF_ANY);
		} else {
			struct weir_frag_value *fv = bpf_map_lookup_elem(&weir_frag, &fk);
			if (!fv) {
				ep = weir_endpoint(ifindex);
				if (!ep)
					return weir_no_endpoint(skb, dir, &pkt, &v);
				return weir_drop(skb, ep, dir, &pkt, &v, WEIR_DROP_FRAG_UNKNOWN);
			}
			pkt.t.sport = fv->src_port;
			pkt.t.dport = fv->dst_port;
			pkt.has_ports = weir_is_port_proto(pkt.t.proto);
		}
	}

	/*
	 * Services: a packet to a frontend is translated to its backend before
	 * anything below sees it; a reply's way back is noted for after the verdict.
	 */
	if (dir == WEIR_DIR_EGRESS) {
		reason = weir_lb_from_pod(&pkt, ifindex, &v, lb, WEIR_SVC_SCOPE_CLUSTER_IP);
		if (!reason)
			reason = weir_lb_forward(skb, &pkt.t, lb);
		if (reason) {
			ep = weir_endpoint(ifindex);
			if (!ep)
				return weir_no_endpoint(skb, dir, &pkt, &v);
			weir_identities(ep, dir, &pkt.t, &v);
			v.flags |= WEIR_FLOW_F_NEW;
			return weir_drop(skb, ep, dir, &pkt, &v, reason);
		}
	} else {
		weir_lb_to_pod(&pkt, ifindex, lb);
	}

	now = weir_ct_now();
	int restart = 0;
	struct weir_ct_value *rct = NULL; /* the connection this packet replies to, if any */

	/*
	 * Fast path, before the endpoint lookup: a packet of a known connection
	 * (forward, or a reply) whose stamp equals its endpoint's current
	 * policy_rev. Anything else takes the full path below.
	 */
	if (pkt.kind != WEIR_PKT_ICMP_ERROR) {
		weir_ct_key_fwd(&key, &pkt.t, dir, ifindex);
		ct = weir_ct_lookup(&key, pkt.t.family);
		if (ct && ct->expires_ns <= now)
			ct = NULL;
		if (ct) {
			restart = (pkt.tcp_flags & (WEIR_TCP_SYN | WEIR_TCP_ACK)) == WEIR_TCP_SYN &&
				  (ct->flags & WEIR_CT_F_CLOSING);
			if (!restart && !(ct->flags & WEIR_CT_F_REVOKED) && weir_ct_stamp_current(ct)) {
				weir_ct_touch(ct, &pkt, now, 0);
				return weir_pass(skb, dir, WEIR_MATCH_ESTABLISHED);
			}
		} else if ((pkt.tcp_flags & (WEIR_TCP_SYN | WEIR_TCP_ACK)) != WEIR_TCP_SYN) {
			/* reply of a connection the other direction opened (a bare SYN never is one) */
			union weir_ct_anykey rkey;
			weir_ct_key_rev(&rkey, &pkt.t, other, ifindex);
			rct = weir_ct_lookup(&rkey, pkt.t.family);
			if (rct && rct->expires_ns <= now)
				rct = NULL;
			if (rct && !(rct->flags & WEIR_CT_F_REVOKED) && weir_ct_stamp_current(rct)) {
				weir_ct_touch(rct, &pkt, now, 1);
				return weir_pass(skb, dir, WEIR_MATCH_ESTABLISHED);
			}
		}
	}

	ep = weir_endpoint(ifindex);
	if (!ep)
		return weir_no_endpoint(skb, dir, &pkt, &v);

	/*
	 * Source validation, on every packet from the pod that leaves the fast
	 * path. The fast path needs none: its entries were made by packets that
	 * passed here, keyed by this interface, and a change of the pod's
	 * addresses bumps its policy_rev, which sends old entries here again.
	 */
	if (dir == WEIR_DIR_EGRESS && !weir_source_valid(ep, &pkt)) {
	invalid_source:
		v.src_identity = ep->identity;
		v.dst_identity = weir_ipcache_identity(pkt.t.daddr, pkt.t.family);
		return weir_drop(skb, ep, dir, &pkt, &v, WEIR_DROP_INVALID_SOURCE);
	}

	/* ICMP errors about a known connection pass as related */
	if (pkt.kind == WEIR_PKT_ICMP_ERROR) {
		weir_ct_key_fwd(&key, &pkt.inner, other, ifindex);
		ct = weir_ct_lookup(&key, pkt.inner.family);
		if (!ct) {
			weir_ct_key_fwd(&key, &pkt.inner, dir, ifindex);
			ct = weir_ct_lookup(&key, pkt.inner.family);
		}
		if (ct && ct->expires_ns > now && !(ct->flags & WEIR_CT_F_REVOKED))
			return weir_pass(skb, dir, WEIR_MATCH_RELATED);
		/* unrelated: judged like any packet, never creates a connection */
		weir_identities(ep, dir, &pkt.t, &v);
		v.match = weir_judge(ep, dir, &pkt, &v, lb);
		if (v.match == WEIR_MATCH_NONE)
			return weir_drop(skb, ep, dir, &pkt, &v, WEIR_DROP_POLICY_DENIED);
		return weir_pass(skb, dir, v.match);
	}

	/* forward packet of a known connection (stamp checked against the endpoint record) */
	if (ct) {
		if (!restart && ct->policy_rev == ep->policy_rev && !(ct->flags & WEIR_CT_F_REVOKED)) {
			weir_ct_touch(ct, &pkt, now, 0);
			return weir_pass(skb, dir, WEIR_MATCH_ESTABLISHED);
		}
	} else if (rct) {
		/* reply of a connection the other direction opened (found above, not expired) */
		if (rct->flags & WEIR_CT_F_REVOKED) {
			weir_identities(ep, dir, &pkt.t, &v);
			v.flags |= WEIR_FLOW_F_REPLY;
			return weir_drop(skb, ep, dir, &pkt, &v, WEIR_DROP_POLICY_REVOKED);
		}
		weir_ct_touch(rct, &pkt, now, 1);
		return weir_pass(skb, dir, WEIR_MATCH_ESTABLISHED);
	}

	/* new connection, or a known one judged again after a policy change */
	weir_identities(ep, dir, &pkt.t, &v);
	v.match = weir_judge(ep, dir, &pkt, &v, lb);
	if (v.match == WEIR_MATCH_NONE) {
		if (ct) {
			if (!(ct->flags & WEIR_CT_F_REVOKED)) {
				ct->flags |= WEIR_CT_F_REVOKED;
				ct->expires_ns = now + WEIR_CT_TIMEOUT_REVOKED * WEIR_NS_PER_SEC;
			}
			return weir_drop(skb, ep, dir, &pkt, &v, WEIR_DROP_POLICY_REVOKED);
		}
		v.flags |= WEIR_FLOW_F_NEW;
		return weir_drop(skb, ep, dir, &pkt, &v, WEIR_DROP_POLICY_DENIED);
	}

	if (ct) {
		/* still allowed: restamp (a restarted TCP connection starts over) */
		ct->policy_rev = ep->policy_rev;
		ct->endpoint_id = ep->endpoint_id;
		ct->match = v.match;
		ct->remote_identity = dir == WEIR_DIR_EGRESS ? v.dst_identity : v.src_identity;
		if (ct->flags & (WEIR_CT_F_REVOKED | WEIR_CT_F_CLOSING) && (pkt.tcp_flags & WEIR_TCP_SYN)) {
			ct->flags = 0;
			ct->tcp_flags = 0;
		}
		ct->flags &= ~WEIR_CT_F_REVOKED;
		weir_ct_touch(ct, &pkt, now, 0);
		v.flags |= WEIR_FLOW_F_NEW;
		v.verdict = WEIR_VERDICT_FORWARDED;
		weir_emit(skb, ep, dir, &pkt, &v);
		return weir_pass(skb, dir, v.match);
	}

	if (!weir_opens_connection(&pkt))
		return weir_pass(skb, dir, v.match); /* allowed, judged again next time */

	struct weir_ct_value nct = {
		.expires_ns = now + weir_ct_timeout_ns(pkt.t.proto, 0),
		.packets = 1,
		.policy_rev = ep->policy_rev,
		.endpoint_id = ep->endpoint_id,
		.remote_identity = dir == WEIR_DIR_EGRESS ? v.dst_identity : v.src_identity,
		.match = v.match,
		.tcp_flags = pkt.tcp_flags,
	};
	if (pkt.tcp_flags & (WEIR_TCP_FIN | WEIR_TCP_RST))
		nct.flags |= WEIR_CT_F_CLOSING;
#ifndef WEIR_BENCH_NO_CT_INSERT
	if (!weir_ct_budget_take(ep->endpoint_id, now)) {
		v.flags |= WEIR_FLOW_F_NEW;
		return weir_drop(skb, ep, dir, &pkt, &v, WEIR_DROP_CT_BUDGET);
	}
	if (weir_ct_insert(&key, pkt.t.family, &nct) != 0)
		return weir_drop(skb, ep, dir, &pkt, &v, WEIR_DROP_CT_FULL);
#endif
	v.flags |= WEIR_FLOW_F_NEW;
	v.verdict = WEIR_VERDICT_FORWARDED;
	weir_emit(skb, ep, dir, &pkt, &v);
	return weir_pass(skb, dir, v.match);
}

SEC("tc")
int from_pod(struct __sk_buff *skb)
{
	struct weir_lb lb = {};
	int rc = weir_handle(skb, WEIR_DIR_EGRESS, &lb);
	if (lb.flags && rc == TC_ACT_OK)
		return weir_lb_finish(skb, &lb);
	return rc;
}

SEC("tc")
int to_pod(struct __sk_buff *skb)
{
	struct weir_lb lb = {};
	int rc = weir_handle(skb, WEIR_DIR_INGRESS, &lb);
	if (lb.flags && rc == TC_ACT_OK)
		return weir_lb_finish(skb, &lb);
	return rc;
}

/* NodePort: tc ingress and egress of the node's external interfaces (bpf/lib/lb.h). */
SEC("tc")
int from_node(struct __sk_buff *skb)
{
	return weir_lb_from_node(skb);
}

SEC("tc")
int to_node(struct __sk_buff *skb)
{
	return weir_lb_to_node(skb);
}

/* The baseline for `make bench`: a tc program that does nothing. */
SEC("tc")
int noop(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
