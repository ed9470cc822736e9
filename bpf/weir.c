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
#include "lib/forward.h"

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

/*
 * The flow event of an allowed new connection, unless the agent switched them
 * off (WEIR_CFG_F_NO_ALLOWED_FLOWS): the event is the largest stage of a new
 * connection's verdict, and the counters count it either way.
 */
static __always_inline void weir_emit_allowed(struct __sk_buff *skb, const struct weir_endpoint *ep, __u8 dir,
					      const struct weir_pkt *pkt, const struct weir_verdict *v)
{
	if (!(weir_config_flags() & WEIR_CFG_F_NO_ALLOWED_FLOWS))
		weir_emit(skb, ep, dir, pkt, v);
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
 * pod's own connection given back to it by its Service (hairpin) is admitted
 * both ways: policy never isolates a pod from itself, whichever address it uses.
 */
static __always_inline __u8 weir_judge(const struct weir_endpoint *ep, __u8 dir, const struct weir_pkt *pkt,
				       const struct weir_verdict *v, const struct weir_lb *lb)
{
	__u32 remote = dir == WEIR_DIR_EGRESS ? v->dst_identity : v->src_identity;
	if (dir == WEIR_DIR_INGRESS && (lb->flags & WEIR_LB_S_HAIRPIN_IN))
		return WEIR_MATCH_ALWAYS;
	if (dir == WEIR_DIR_EGRESS && (lb->flags & (WEIR_LB_S_HAIRPIN_OUT | WEIR_LB_S_HAIRPIN_REPLY)))
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

/* One packet's state between the fast path and the full path. */
struct weir_ctx {
	struct weir_pkt pkt;
	union weir_ct_anykey key; /* scratch: both frames share 512 bytes of stack */
	__u64 now;		  /* conntrack clock, once looked up */
	__u8 reason;		  /* parse result: 0 or a WEIR_DROP_* */
	__u8 restart;		  /* a bare SYN on a closing connection: starts it over */
	__u8 looked;		  /* conntrack looked up by the fast path (now, ct, rct valid) */
	__u8 no_entry;		  /* looked up, and neither direction has an entry (live or expired) */
	__u8 svc; /* to_pod: a reply of a connection the pod sent to a Service (WEIR_CT_F_SERVICE) */
};

/*
 * Conntrack lookups of a packet: its own connection (`*ctp`, forward), else,
 * unless it is a bare SYN, the connection it replies to (`*rctp`); expired
 * entries read as none. Returns 1 when the packet belongs to a known
 * connection whose stamp equals its endpoint's current policy_rev: it is
 * touched and passes (the entry it passed on is then `*ctp`, or `*rctp` when
 * `*ctp` is NULL). Anything else takes the full path with what was found.
 *
 * A packet from a lower port to a higher one (a server's answer to an
 * ephemeral client port, an echo reply) looks for the connection it replies
 * to first, so a reply costs one lookup, not a forward miss and a hit; a
 * forward packet from a port below its destination's pays that second lookup
 * instead. The order matters only when both directions have an entry on one
 * interface, one of them a leftover of the same ports (two live connections
 * of one socket pair cannot exist): a current reply entry then wins.
 */
static __always_inline int weir_ct_find(struct weir_ctx *c, __u8 dir, __u32 ifindex,
					struct weir_ct_value **ctp, struct weir_ct_value **rctp)
{
	const __u8 other = dir == WEIR_DIR_EGRESS ? WEIR_DIR_INGRESS : WEIR_DIR_EGRESS;
	const int bare_syn = (c->pkt.tcp_flags & (WEIR_TCP_SYN | WEIR_TCP_ACK)) == WEIR_TCP_SYN;
	struct weir_ct_value *raw, *ct, *rraw = NULL, *rct;
	int rlooked = 0;

	if (!bare_syn && c->pkt.t.sport < c->pkt.t.dport) {
		weir_ct_key_rev(&c->key, &c->pkt.t, other, ifindex);
		rraw = weir_ct_lookup(&c->key, c->pkt.t.family);
		rlooked = 1;
		if (rraw && rraw->expires_ns > c->now && !(rraw->flags & WEIR_CT_F_REVOKED) &&
		    weir_ct_stamp_current(rraw)) {
			weir_ct_touch(rraw, &c->pkt, c->now, 1);
			c->svc = rraw->flags & WEIR_CT_F_SERVICE;
			*rctp = rraw;
			return 1;
		}
	}
	weir_ct_key_fwd(&c->key, &c->pkt.t, dir, ifindex);
	raw = weir_ct_lookup(&c->key, c->pkt.t.family);
	ct = raw && raw->expires_ns > c->now ? raw : NULL;
	*ctp = ct;
	if (ct) {
		c->restart = bare_syn && (ct->flags & WEIR_CT_F_CLOSING);
		if (!c->restart && !(ct->flags & WEIR_CT_F_REVOKED) && weir_ct_stamp_current(ct)) {
			weir_ct_touch(ct, &c->pkt, c->now, 0);
			return 1;
		}
		return 0;
	}
	if (bare_syn)
		return 0; /* a bare SYN is never a reply */
	if (!rlooked) {
		weir_ct_key_rev(&c->key, &c->pkt.t, other, ifindex);
		rraw = weir_ct_lookup(&c->key, c->pkt.t.family);
	}
	if (!rraw) {
		__u8 absent = !raw; /* a scalar: the verifier refuses pointer arithmetic such as raw | rraw */
		WEIR_NO_MERGE(absent);
		c->no_entry = absent;
	}
	rct = rraw && rraw->expires_ns > c->now ? rraw : NULL;
	*rctp = rct;
	if (!rlooked && rct && !(rct->flags & WEIR_CT_F_REVOKED) && weir_ct_stamp_current(rct)) {
		weir_ct_touch(rct, &c->pkt, c->now, 1);
		c->svc = rct->flags & WEIR_CT_F_SERVICE;
		return 1;
	}
	return 0;
}

/*
 * The full path: everything the fast path (weir_handle) did not pass —
 * refusals of the parser, ARP/ND, fragments, ICMP errors, new connections,
 * connections whose stamp is stale, and replies of revoked ones. `ct` and
 * `rct` are what the fast path found (when c->looked).
 */
static __always_inline int weir_full(struct __sk_buff *skb, struct weir_ctx *c, struct weir_ct_value *ct,
				     struct weir_ct_value *rct, const __u8 dir, struct weir_lb *lb)
{
	const __u8 other = dir == WEIR_DIR_EGRESS ? WEIR_DIR_INGRESS : WEIR_DIR_EGRESS;
	struct weir_pkt *pkt = &c->pkt;
	__u32 ifindex = skb->ifindex;
	struct weir_endpoint *ep;
	struct weir_verdict v = {};
	int reason = c->reason;

	v.orig = &lb->orig; /* all zero unless the packet was sent to a Service frontend */
	if (lb->orig.svc)
		v.flags = WEIR_FLOW_F_SERVICE;

	if (reason || pkt->kind == WEIR_PKT_ALWAYS) {
		ep = weir_endpoint(ifindex);
		if (!ep && reason)
			return weir_no_endpoint(skb, dir, pkt, &v);
		if (reason) {
			if (lb->orig.svc) {
				weir_identities(ep, dir, &pkt->t, &v);
				v.flags |= WEIR_FLOW_F_NEW;
			}
			return weir_drop(skb, ep, dir, pkt, &v, reason);
		}
		if (ep && dir == WEIR_DIR_EGRESS && pkt->t.family && !weir_source_valid(ep, pkt))
			goto invalid_source;		       /* ARP has no family here: it passes */
		return weir_pass(skb, dir, WEIR_MATCH_ALWAYS); /* ARP, ND, MLD: as on any endpoint */
	}

	if (!c->looked) {
		/* fragments: the first one's ports are remembered for the later ones */
		if (pkt->frag) {
			struct weir_frag_key fk = {
				.id = pkt->frag_id, .protocol = pkt->t.proto, .family = pkt->t.family};
			__builtin_memcpy(fk.src_addr, pkt->t.saddr, 16);
			__builtin_memcpy(fk.dst_addr, pkt->t.daddr, 16);
			if (pkt->frag == WEIR_FRAG_FIRST) {
				struct weir_frag_value fv = {.src_port = pkt->t.sport,
							     .dst_port = pkt->t.dport};
				bpf_map_update_elem(&weir_frag, &fk, &fv, BPF_ANY);
				/* sent to a Service frontend: its later fragments, still addressed
				 * to it, find their ports under the frontend too (weir_lb_later) */
				if (dir == WEIR_DIR_EGRESS && lb->orig.svc) {
					__builtin_memcpy(fk.dst_addr, lb->orig.addr, 16);
					fv.dst_port = lb->orig.port;
					bpf_map_update_elem(&weir_frag, &fk, &fv, BPF_ANY);
				}
			} else {
				struct weir_frag_value *fv = bpf_map_lookup_elem(&weir_frag, &fk);
				if (!fv) {
					ep = weir_endpoint(ifindex);
					if (!ep)
						return weir_no_endpoint(skb, dir, pkt, &v);
					return weir_drop(skb, ep, dir, pkt, &v, WEIR_DROP_FRAG_UNKNOWN);
				}
				pkt->t.sport = fv->src_port;
				pkt->t.dport = fv->dst_port;
				pkt->has_ports = weir_is_port_proto(pkt->t.proto);
			}
		}
		c->now = weir_ct_now();
		if (pkt->kind != WEIR_PKT_ICMP_ERROR && weir_ct_find(c, dir, ifindex, &ct, &rct)) {
			if (dir == WEIR_DIR_INGRESS && c->svc)
				weir_lb_reverse(pkt, ifindex, lb);
			return weir_pass(skb, dir, WEIR_MATCH_ESTABLISHED);
		}
	}
	__u64 now = c->now;

	ep = weir_endpoint(ifindex);
	if (!ep)
		return weir_no_endpoint(skb, dir, pkt, &v);
	if (c->no_entry && pkt->t.proto == IPPROTO_TCP && !(pkt->tcp_flags & WEIR_TCP_SYN))
		weir_count_ct_miss(dir); /* evicted, most likely */

	/*
	 * Source validation, on every packet from the pod that leaves the fast
	 * path. The fast path needs none: its entries were made by packets that
	 * passed here, keyed by this interface, and a change of the pod's
	 * addresses bumps its policy_rev, which sends old entries here again.
	 */
	if (dir == WEIR_DIR_EGRESS && !weir_source_valid(ep, pkt)) {
	invalid_source:
		v.src_identity = ep->identity;
		v.dst_identity = weir_ipcache_identity(pkt->t.daddr, pkt->t.family);
		return weir_drop(skb, ep, dir, pkt, &v, WEIR_DROP_INVALID_SOURCE);
	}

	/* ICMP errors about a known connection pass as related */
	if (pkt->kind == WEIR_PKT_ICMP_ERROR) {
		weir_ct_key_fwd(&c->key, &pkt->inner, other, ifindex);
		ct = weir_ct_lookup(&c->key, pkt->inner.family);
		if (!ct) {
			weir_ct_key_fwd(&c->key, &pkt->inner, dir, ifindex);
			ct = weir_ct_lookup(&c->key, pkt->inner.family);
		}
		if (ct && ct->expires_ns > now && !(ct->flags & WEIR_CT_F_REVOKED))
			return weir_pass(skb, dir, WEIR_MATCH_RELATED);
		/* unrelated: judged like any packet, never creates a connection */
		weir_identities(ep, dir, &pkt->t, &v);
		v.match = weir_judge(ep, dir, pkt, &v, lb);
		if (v.match == WEIR_MATCH_NONE)
			return weir_drop(skb, ep, dir, pkt, &v, WEIR_DROP_POLICY_DENIED);
		return weir_pass(skb, dir, v.match);
	}

	/* forward packet of a known connection (stamp checked against the endpoint record) */
	if (ct) {
		if (!c->restart && ct->policy_rev == ep->policy_rev && !(ct->flags & WEIR_CT_F_REVOKED)) {
			weir_ct_touch(ct, pkt, now, 0);
			return weir_pass(skb, dir, WEIR_MATCH_ESTABLISHED);
		}
	} else if (rct) {
		/* reply of a connection the other direction opened (found above, not expired) */
		if (rct->flags & WEIR_CT_F_REVOKED) {
			weir_identities(ep, dir, &pkt->t, &v);
			v.flags |= WEIR_FLOW_F_REPLY;
			return weir_drop(skb, ep, dir, pkt, &v, WEIR_DROP_POLICY_REVOKED);
		}
		weir_ct_touch(rct, pkt, now, 1);
		if (dir == WEIR_DIR_INGRESS && (rct->flags & WEIR_CT_F_SERVICE))
			weir_lb_reverse(pkt, ifindex, lb);
		return weir_pass(skb, dir, WEIR_MATCH_ESTABLISHED);
	}

	/* new connection, or a known one judged again after a policy change */
	weir_identities(ep, dir, &pkt->t, &v);
	v.match = weir_judge(ep, dir, pkt, &v, lb);
	if (v.match == WEIR_MATCH_NONE) {
		if (ct) {
			if (!(ct->flags & WEIR_CT_F_REVOKED)) {
				ct->flags |= WEIR_CT_F_REVOKED;
				ct->expires_ns = now + WEIR_CT_TIMEOUT_REVOKED * WEIR_NS_PER_SEC;
			}
			return weir_drop(skb, ep, dir, pkt, &v, WEIR_DROP_POLICY_REVOKED);
		}
		v.flags |= WEIR_FLOW_F_NEW;
		return weir_drop(skb, ep, dir, pkt, &v, WEIR_DROP_POLICY_DENIED);
	}

	if (ct) {
		/* still allowed: restamp (a restarted TCP connection starts over) */
		ct->policy_rev = ep->policy_rev;
		ct->endpoint_id = ep->endpoint_id;
		ct->match = v.match;
		ct->remote_identity = dir == WEIR_DIR_EGRESS ? v.dst_identity : v.src_identity;
		if (ct->flags & (WEIR_CT_F_REVOKED | WEIR_CT_F_CLOSING) && (pkt->tcp_flags & WEIR_TCP_SYN)) {
			/* sent to a frontend this time, or not */
			ct->flags = dir == WEIR_DIR_EGRESS ? weir_lb_ct_flags(lb) : 0;
			ct->tcp_flags = 0;
		}
		ct->flags &= ~WEIR_CT_F_REVOKED;
		weir_ct_touch(ct, pkt, now, 0);
		v.flags |= WEIR_FLOW_F_NEW;
		v.verdict = WEIR_VERDICT_FORWARDED;
		weir_emit_allowed(skb, ep, dir, pkt, &v);
		return weir_pass(skb, dir, v.match);
	}

	if (!weir_opens_connection(pkt))
		return weir_pass(skb, dir, v.match); /* allowed, judged again next time */

	struct weir_ct_value nct = {
		.expires_ns = now + weir_ct_timeout_ns(pkt->t.proto, 0),
		.packets = 1,
		.policy_rev = ep->policy_rev,
		.endpoint_id = ep->endpoint_id,
		.remote_identity = dir == WEIR_DIR_EGRESS ? v.dst_identity : v.src_identity,
		.match = v.match,
		.tcp_flags = pkt->tcp_flags,
	};
	if (pkt->tcp_flags & (WEIR_TCP_FIN | WEIR_TCP_RST))
		nct.flags |= WEIR_CT_F_CLOSING;
	if (dir == WEIR_DIR_EGRESS) /* translated: its replies get the frontend back on to_pod */
		nct.flags |= weir_lb_ct_flags(lb);
#ifndef WEIR_BENCH_NO_CT_INSERT
	if (!weir_ct_budget_take(ep->endpoint_id, now)) {
		v.flags |= WEIR_FLOW_F_NEW;
		return weir_drop(skb, ep, dir, pkt, &v, WEIR_DROP_CT_BUDGET);
	}
	weir_ct_key_fwd(&c->key, &pkt->t, dir, ifindex);
	if (weir_ct_insert(&c->key, pkt->t.family, &nct) != 0)
		return weir_drop(skb, ep, dir, pkt, &v, WEIR_DROP_CT_FULL);
#else
	/*
	 * The insert's key is still built, as the agent's build does: the same
	 * code and stack layout, so the bench build fits the verifier's 512
	 * bytes of combined stack wherever the real one does.
	 */
	weir_ct_key_fwd(&c->key, &pkt->t, dir, ifindex);
	asm volatile("" : : "r"(&c->key), "r"(&nct) : "memory");
#endif
	v.flags |= WEIR_FLOW_F_NEW;
	v.verdict = WEIR_VERDICT_FORWARDED;
	weir_emit_allowed(skb, ep, dir, pkt, &v);
	return weir_pass(skb, dir, v.match);
}

/*
 * The full path of each direction as its own BPF function (not inlined): the
 * fast path keeps only what it needs in registers, instead of sharing them
 * with everything the full path holds live (established packet 59 -> 40 ns
 * net on the bench machine).
 */
static __noinline int weir_full_egress(struct __sk_buff *skb, struct weir_ctx *c, struct weir_ct_value *ct,
				       struct weir_ct_value *rct, struct weir_lb *lb)
{
	return weir_full(skb, c, ct, rct, WEIR_DIR_EGRESS, lb);
}

static __noinline int weir_full_ingress(struct __sk_buff *skb, struct weir_ctx *c, struct weir_ct_value *ct,
					struct weir_ct_value *rct, struct weir_lb *lb)
{
	return weir_full(skb, c, ct, rct, WEIR_DIR_INGRESS, lb);
}

/* from_pod's Service step (bpf/lib/lb.h), out of line: the fast path's stack stays its own. */
static __noinline int weir_lb_egress(struct __sk_buff *skb, struct weir_pkt *pkt, struct weir_lb *lb)
{
	int reason = pkt->frag == WEIR_FRAG_LATER
			     ? weir_lb_later(pkt, skb->ifindex, &lb->orig, lb)
			     : weir_lb_from_pod(pkt, skb->ifindex, &lb->orig, lb, WEIR_SVC_SCOPE_CLUSTER_IP);
	if (!reason)
		reason = weir_lb_forward(skb, &pkt->t, lb);
	return reason;
}

/*
 * to_pod: an ICMP error whose quoted header belongs to a connection the pod
 * sent to a Service frontend (its conntrack entry, live, not revoked, marked
 * WEIR_CT_F_SERVICE) passes as related, with the frontend back in it
 * (weir_lb_icmp_reverse). Returns the verdict, or -1 when the error is not
 * such (the full path judges it as any ICMP error). A global function:
 * verified once, on its own, not once per path of to_pod.
 */
__noinline int weir_lb_icmp_reply(struct __sk_buff *skb, const struct weir_pkt *pkt, struct weir_lb *lb)
{
	union weir_ct_anykey k;
	struct weir_ct_value *ct;

	if (!skb || !pkt || !lb || pkt->kind != WEIR_PKT_ICMP_ERROR || !weir_is_port_proto(pkt->inner.proto))
		return -1;
	weir_ct_key_fwd(&k, &pkt->inner, WEIR_DIR_EGRESS, skb->ifindex);
	ct = weir_ct_lookup(&k, pkt->inner.family);
	if (!ct || !(ct->flags & WEIR_CT_F_SERVICE) || (ct->flags & WEIR_CT_F_REVOKED) ||
	    ct->expires_ns <= weir_ct_now())
		return -1;
	switch (weir_lb_icmp_reverse(skb, pkt, skb->ifindex, lb)) {
	case 0:
		return -1; /* no translation of it is known: judged as any ICMP error */
	case 1:
		weir_count(WEIR_DIR_INGRESS, WEIR_VERDICT_FORWARDED, WEIR_MATCH_RELATED, skb->len);
		return TC_ACT_OK;
	default:
		return TC_ACT_SHOT;
	}
}

/*
 * to_pod: a backend's reply to a connection the pod sent to a Service frontend
 * (its conntrack entry marked WEIR_CT_F_SERVICE) passed the fast path; its
 * source becomes the frontend again (weir_lb_reverse), the rewrite kept in the
 * per-CPU scratch. A scratch that cannot be read drops the packet.
 */
static __noinline int weir_lb_reply(struct __sk_buff *skb, const struct weir_pkt *pkt)
{
	__u32 zero = 0;
	struct weir_lb_scratch *x = bpf_map_lookup_elem(&weir_lb_scratch, &zero);
	if (!x)
		return TC_ACT_SHOT;
	x->lb.flags = 0;
	weir_lb_reverse(pkt, skb->ifindex, &x->lb);
	if (x->lb.flags)
		return weir_lb_finish(skb, &x->lb);
	return TC_ACT_OK;
}

/*
 * The fast path: a plain (unfragmented, non-ICMP-error) packet of a known
 * connection, forward or reply, whose stamp equals its endpoint's current
 * policy_rev passes after one conntrack lookup (two for a reply), before any
 * endpoint lookup and before any Services map is read. Everything else goes
 * to the full path, with the Services step first.
 *
 * from_pod looks conntrack up with the packet as the pod sent it. A hit on an
 * entry not marked WEIR_CT_F_SERVICE is a connection judged to that literal
 * destination and passes untranslated: an entry keyed with a frontend as its
 * destination exists only for a connection opened to that address as such
 * (before the Service existed, as kube-proxy's conntrack keeps it), since a
 * translated connection's entry is keyed with its backend. A miss, a stale
 * entry, an entry marked WEIR_CT_F_SERVICE, or a packet to the hairpin
 * address goes through the Services step (a frontend is translated) and the
 * full path. When the fast path found no live entry either way and the
 * Services step left the tuple as it was, the full path takes those misses
 * as they are (a new connection's second miss saved, ~20 ns); else it looks
 * conntrack up again with the tuple as it then is. Only scalars are handed
 * on: handing the entries found on as well would multiply the states the
 * verifier walks (from_pod ~125k -> ~950k instructions of its 1M; the scalars
 * take it to ~350k).
 * to_pod reads the scratch only for a Service reply (weir_lb_reply) or on
 * the full path.
 */
static __always_inline int weir_handle(struct __sk_buff *skb, const __u8 dir)
{
	struct weir_ct_value *ct = NULL, *rct = NULL;
	struct weir_ctx c;
	__u32 zero = 0;
	int rc;

	__builtin_memset(&c.pkt, 0, sizeof(c.pkt));
	c.restart = 0;
	c.looked = 0;
	c.no_entry = 0;
	c.svc = 0;
	c.reason = weir_parse(skb, &c.pkt);
	if (!c.reason && c.pkt.kind != WEIR_PKT_ALWAYS && c.pkt.kind != WEIR_PKT_ICMP_ERROR && !c.pkt.frag &&
	    (dir == WEIR_DIR_INGRESS || !weir_lb_is_hairpin_addr(c.pkt.t.daddr, c.pkt.t.family))) {
		c.now = weir_ct_now();
		c.looked = 1;
		if (weir_ct_find(&c, dir, skb->ifindex, &ct, &rct)) {
			weir_count(dir, WEIR_VERDICT_FORWARDED, WEIR_MATCH_ESTABLISHED, skb->len);
			if (dir == WEIR_DIR_EGRESS)
				return weir_to_local_pod(skb, ct ? ct : rct); /* the entry it passed on */
			if (c.svc)
				return weir_lb_reply(skb, &c.pkt);
			return TC_ACT_OK;
		}
	}
	/* the Service rewrite left for after the verdict lives in the per-CPU scratch, off the stack */
	struct weir_lb_scratch *x = bpf_map_lookup_elem(&weir_lb_scratch, &zero);
	if (!x)
		return TC_ACT_SHOT;
	struct weir_lb *lb = &x->lb;
	/* an ICMP error about a connection the pod sent to a Service frontend: passed, translated back */
	if (dir == WEIR_DIR_INGRESS && !c.reason && c.pkt.kind == WEIR_PKT_ICMP_ERROR) {
		rc = weir_lb_icmp_reply(skb, &c.pkt, lb);
		if (rc >= 0)
			return rc;
	}
	lb->flags = 0;
	__builtin_memset(&lb->orig, 0, sizeof(lb->orig));
	/*
	 * Services: a packet to a frontend is translated to its backend before
	 * anything below sees it (conntrack is then looked up with the
	 * translated tuple); a hairpin connection arriving is noted for the
	 * verdict, and the way back of a reply whose conntrack entry says it
	 * answers a translated connection for after it (bpf/lib/lb.h). A later
	 * fragment, which carries no ports, follows its first fragment's
	 * translation (weir_lb_later).
	 */
	if (!c.reason && (c.pkt.has_ports || (dir == WEIR_DIR_EGRESS && c.pkt.frag == WEIR_FRAG_LATER))) {
		if (dir == WEIR_DIR_EGRESS) {
			/* a refusal: the full path drops it, with its event */
			c.reason = weir_lb_egress(skb, &c.pkt, lb);
		} else {
			weir_lb_to_pod(&c.pkt, skb->ifindex, lb);
		}
	}
	if (dir == WEIR_DIR_EGRESS) {
		/*
		 * The fast path's lookups stand when they found no live entry either
		 * way and the Services step left the tuple as it was (no frontend,
		 * nothing to rewrite): the full path would look the same keys up and
		 * miss again (a new connection's second miss, ~20 ns). Anything else
		 * is looked up again with the tuple as it now is.
		 */
#ifndef WEIR_BENCH_EGRESS_LOOK_AGAIN
		__u8 again = !c.looked || c.reason || ct || rct || lb->orig.svc || lb->flags;
#else
		__u8 again = 1; /* the bench's side-by-side build: every new connection looked up twice */
#endif
		if (again) {
			c.looked = 0;
			c.restart = 0;
			c.no_entry = 0;
		}
		rc = weir_full_egress(skb, &c, NULL, NULL, lb);
	} else
		rc = weir_full_ingress(skb, &c, ct, rct, lb);
	if (lb->flags && rc == TC_ACT_OK)
		rc = weir_lb_finish(skb, lb);
	/* passed, to a pod of this node: straight to its veth (bpf/lib/forward.h) */
	if (dir == WEIR_DIR_EGRESS && rc == TC_ACT_OK)
		return weir_to_local_pod(skb, NULL);
	return rc;
}

SEC("tc")
int from_pod(struct __sk_buff *skb)
{
	return weir_handle(skb, WEIR_DIR_EGRESS);
}

SEC("tc")
int to_pod(struct __sk_buff *skb)
{
	return weir_handle(skb, WEIR_DIR_INGRESS);
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

/*
 * The agent's clock sample (run by BPF_PROG_TEST_RUN, never attached): flow
 * events carry the tick count, which costs no helper call, and the agent turns
 * it into CLOCK_MONOTONIC with what this writes over the first bytes of the
 * packet (struct weir_clock_sample).
 */
SEC("tc")
int clock_sample(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct weir_clock_sample *s = data;

	if ((void *)(s + 1) > data_end)
		return TC_ACT_SHOT;
	s->jiffies = bpf_jiffies64();
	s->mono_ns = bpf_ktime_get_coarse_ns();
	s->jiffies_after = bpf_jiffies64();
	s->ns_per_tick = CONFIG_HZ ? WEIR_NS_PER_SEC / CONFIG_HZ : 0;
	return TC_ACT_OK;
}

/* The baseline for `make bench`: a tc program that does nothing. */
SEC("tc")
int noop(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
