/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Services: a pod's packet to a Service frontend (ClusterIP, port, protocol)
 * is given a backend and its destination rewritten on `from_pod`, before the
 * verdict, so egress policy judges the backend's identity and port; replies
 * get the frontend back as their source on the client's `to_pod`, after the
 * verdict. A backend is chosen once per connection (weir_lb_fwd) among the
 * slots the syncer wrote for the frontend's current backend set, at random or
 * by client address under ClientIP affinity (weir_lb_aff); the reply's
 * rewrite is remembered in weir_lb_rev. A pod given to itself (hairpin)
 * receives the connection from WEIR_HAIRPIN_IPV4/_IPV6, never from its own
 * address, and both halves are sent back into the pod with bpf_redirect.
 */
#ifndef WEIR_LIB_LB_H
#define WEIR_LIB_LB_H

#include <linux/pkt_cls.h>
#include "maps.h"
#include "parse.h"
#include "events.h"
#include "conntrack.h"
#include "counters.h"
#include "ipcache.h"

/* offsets in the frame (the parser accepts no L2 header but Ethernet) */
#define WEIR_LB_ETH_HLEN     14
#define WEIR_LB_IP4_CSUM_OFF (WEIR_LB_ETH_HLEN + 10)
#define WEIR_LB_IP4_SRC_OFF  (WEIR_LB_ETH_HLEN + 12)
#define WEIR_LB_IP4_DST_OFF  (WEIR_LB_ETH_HLEN + 16)
#define WEIR_LB_IP6_SRC_OFF  (WEIR_LB_ETH_HLEN + 8)
#define WEIR_LB_IP6_DST_OFF  (WEIR_LB_ETH_HLEN + 24)
#define WEIR_LB_TCP_CSUM_OFF 16
#define WEIR_LB_UDP_CSUM_OFF 6

/* What to do with a packet once its verdict passed it (struct weir_lb.flags). */
#define WEIR_LB_S_REVERSE	(1 << 0) /* to_pod: a reply; the frontend becomes its source again */
#define WEIR_LB_S_HAIRPIN_IN	(1 << 1) /* to_pod: a hairpin connection's packet: ingress admits it */
#define WEIR_LB_S_HAIRPIN_OUT	(1 << 2) /* from_pod: source -> hairpin address, back into the pod */
#define WEIR_LB_S_HAIRPIN_REPLY (1 << 3) /* from_pod: destination hairpin address -> the pod, back into it */
#define WEIR_LB_S_FORWARD	(1 << 4) /* from_pod: destination frontend -> backend, before the verdict */
#define WEIR_LB_S_SNAT		(1 << 5) /* from_node: the connection is masqueraded (weir_nat) */

/* One rewrite of one side (source or destination) of a packet, done after its verdict. */
struct weir_lb {
	__u8 old_addr[16]; /* first: 8-byte aligned, compared as two __u64 */
	__u8 new_addr[16];
	__u16 l4_off;
	__u16 old_port;
	__u16 new_port;
	__u8 flags; /* WEIR_LB_S_* */
	__u8 family;
	__u8 proto;
	__u8 is_src; /* rewrite the source (else the destination) */
	__u16 _pad;
	struct weir_lb_orig orig; /* from_pod: the frontend the packet was sent to */
	struct weir_lb_key rk;	  /* to_pod: the reply's key in weir_lb_rev (weir_lb_reverse) */
} __attribute__((aligned(8)));

static __always_inline void weir_lb_count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&weir_lb_counters, &idx);
	if (c)
		(*c)++;
}

static __always_inline int weir_lb_addr_eq(const __u8 *a, const __u8 *b, __u8 family)
{
	if (family == WEIR_FAMILY_IPV4)
		return *(const __u32 *)a == *(const __u32 *)b;
	const __u64 *x = (const __u64 *)a;
	const __u64 *y = (const __u64 *)b;
	return x[0] == y[0] && x[1] == y[1];
}

static __always_inline int weir_lb_is_hairpin_addr(const __u8 *a, __u8 family)
{
	if (family == WEIR_FAMILY_IPV4)
		return *(const __u32 *)a == bpf_htonl(WEIR_HAIRPIN_IPV4);
	const __u64 *x = (const __u64 *)a;
	return x[0] == bpf_cpu_to_be64(WEIR_HAIRPIN_IPV6_HI) && x[1] == bpf_cpu_to_be64(WEIR_HAIRPIN_IPV6_LO);
}

static __always_inline void weir_lb_hairpin_addr(__u8 *a, __u8 family)
{
	__u64 *x = (__u64 *)a;
	if (family == WEIR_FAMILY_IPV4) {
		x[0] = 0;
		x[1] = 0;
		*(__u32 *)a = bpf_htonl(WEIR_HAIRPIN_IPV4);
		return;
	}
	x[0] = bpf_cpu_to_be64(WEIR_HAIRPIN_IPV6_HI);
	x[1] = bpf_cpu_to_be64(WEIR_HAIRPIN_IPV6_LO);
}

static __always_inline void weir_lb_key_make(struct weir_lb_key *k, const __u8 *a, const __u8 *b,
					     __u16 a_port, __u16 b_port, const struct weir_tuple *t,
					     __u32 ifindex)
{
	__builtin_memcpy(k->a_addr, a, 16);
	__builtin_memcpy(k->b_addr, b, 16);
	k->a_port = a_port;
	k->b_port = b_port;
	k->protocol = t->proto;
	k->family = t->family;
	k->_pad = 0;
	k->ifindex = ifindex;
}

/*
 * Rewrites one side's address and port as `r` says, with the IPv4 header
 * checksum and the TCP/UDP checksum (pseudo-header included) updated
 * incrementally; SCTP's CRC32c covers no addresses and its port never changes
 * here. A later fragment (l4_off 0) has only its address rewritten: the L4
 * checksum lives in the first fragment. Returns 0, or -1 when a helper failed.
 * Not inlined: one copy, verified per call site, off the caller's stack.
 */
static __noinline int weir_lb_rewrite(struct __sk_buff *skb, const struct weir_lb *r)
{
	__u32 l4_off = r->l4_off;
	__u32 csum_off = 0;
	__u64 mangled = 0;
	if (l4_off) {
		if (r->proto == IPPROTO_TCP) {
			csum_off = l4_off + WEIR_LB_TCP_CSUM_OFF;
		} else if (r->proto == IPPROTO_UDP) {
			csum_off = l4_off + WEIR_LB_UDP_CSUM_OFF;
			mangled = BPF_F_MARK_MANGLED_0; /* IPv4 UDP without a checksum keeps none */
		}
	}
	if (!weir_lb_addr_eq(r->old_addr, r->new_addr, r->family)) {
		if (r->family == WEIR_FAMILY_IPV4) {
			__u32 from = *(const __u32 *)r->old_addr;
			__u32 to = *(const __u32 *)r->new_addr;
			if (csum_off &&
			    bpf_l4_csum_replace(skb, csum_off, from, to, BPF_F_PSEUDO_HDR | mangled | 4))
				return -1;
			if (bpf_l3_csum_replace(skb, WEIR_LB_IP4_CSUM_OFF, from, to, 4))
				return -1;
			if (bpf_skb_store_bytes(skb, r->is_src ? WEIR_LB_IP4_SRC_OFF : WEIR_LB_IP4_DST_OFF,
						&to, 4, 0))
				return -1;
		} else {
			if (csum_off) {
				__s64 diff = bpf_csum_diff((__be32 *)r->old_addr, 16, (__be32 *)r->new_addr,
							   16, 0);
				if (diff < 0)
					return -1;
				if (bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR | mangled))
					return -1;
			}
			if (bpf_skb_store_bytes(skb, r->is_src ? WEIR_LB_IP6_SRC_OFF : WEIR_LB_IP6_DST_OFF,
						r->new_addr, 16, 0))
				return -1;
		}
	}
	if (l4_off && r->old_port != r->new_port) {
		__be16 from = bpf_htons(r->old_port);
		__be16 to = bpf_htons(r->new_port);
		if (csum_off && bpf_l4_csum_replace(skb, csum_off, from, to, mangled | 2))
			return -1;
		if (bpf_skb_store_bytes(skb, l4_off + (r->is_src ? 0 : 2), &to, 2, 0))
			return -1;
	}
	return 0;
}

/* Whether the pod on this interface owns the packet's source (else translation is left to source validation). */
static __always_inline int weir_lb_source_ok(__u32 ifindex, const struct weir_tuple *t)
{
	struct weir_endpoint *ep = bpf_map_lookup_elem(&weir_endpoints, &ifindex);
	if (!ep)
		return 0;
	return weir_lb_addr_eq(t->saddr, t->family == WEIR_FAMILY_IPV4 ? ep->ipv4 : ep->ipv6, t->family);
}

/*
 * Writes a translated connection's state: over the entry already there
 * (`cur`, that key's value: a client port used again, as a busy client reuses
 * its ephemeral ports, or a connection given a new backend), else as a new
 * entry. An LRU insert takes a node off the map's free list and rotates its
 * LRU lists (most of what a translated connection cost in the services bench);
 * an overwrite in place does neither. A reader on another CPU may see a torn
 * value only for a packet of the same tuple, and that packet's translated
 * tuple is judged by conntrack and policy like any other, so it can never
 * reach what policy does not allow. Returns 0, or the insert's error.
 */
static __always_inline long weir_lb_store(void *map, const struct weir_lb_key *k, void *cur, const void *v,
					  __u32 size)
{
	if (cur) {
		__builtin_memcpy(cur, v, size);
		return 0;
	}
	return bpf_map_update_elem(map, k, v, BPF_ANY);
}

/*
 * Scratch space for a new translation's keys and values: `from_pod` runs
 * close to the 512-byte stack limit, so they live in a per-CPU array (tc
 * programs are not preempted and do not nest on one CPU). It holds nothing
 * between packets (the loader pins it like every map).
 */
struct weir_lb_scratch {
	struct weir_lb_key k;
	struct weir_svc_key sk;
	struct weir_lb_fwd_value nf;
	struct weir_lb_rev_value rv;
	struct weir_lb_aff_key ak;
	struct weir_lb_aff_value av;
	struct weir_svc_be_key bk;
	struct weir_lb lb;     /* from_pod/to_pod: the rewrite left for after the verdict (off the stack) */
	struct weir_lb_key nk; /* NodePort masquerade: the reverse half's key */
	struct weir_nat_value nv;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct weir_lb_scratch);
} weir_lb_scratch SEC(".maps");

/*
 * A backend for a new connection: under ClientIP affinity the client's last
 * one while its slot still holds it and the timeout has not run out since it
 * was last chosen, else a random slot of the current set.
 */
static __always_inline struct weir_svc_be_value *weir_lb_choose(struct weir_lb_scratch *x,
								const struct weir_svc_value *svc,
								const struct weir_tuple *t, __u16 *slot)
{
	struct weir_svc_be_value *be;
	__u64 now = 0;

	x->bk.backend_set = svc->backend_set;
	if (svc->flags & WEIR_SVC_F_AFFINITY) {
		__builtin_memset(&x->ak, 0, sizeof(x->ak));
		x->ak.svc_id = svc->svc_id;
		x->ak.family = t->family;
		__builtin_memcpy(x->ak.addr, t->saddr, 16);
		now = weir_ct_now();
		struct weir_lb_aff_value *a = bpf_map_lookup_elem(&weir_lb_aff, &x->ak);
		if (a && now - a->last_ns <= (__u64)svc->affinity_timeout * WEIR_NS_PER_SEC) {
			x->bk.slot = a->slot;
			be = bpf_map_lookup_elem(&weir_svc_be, &x->bk);
			if (be && be->port == a->port && weir_lb_addr_eq(be->addr, a->addr, t->family)) {
				a->last_ns = now;
				*slot = a->slot;
				return be;
			}
		}
	}
	x->bk.slot = bpf_get_prandom_u32() % svc->count;
	be = bpf_map_lookup_elem(&weir_svc_be, &x->bk);
	if (!be)
		return NULL; /* the syncer is replacing the set: never a guess */
	*slot = x->bk.slot;
	if (svc->flags & WEIR_SVC_F_AFFINITY) {
		__builtin_memset(&x->av, 0, sizeof(x->av));
		x->av.last_ns = now;
		x->av.port = be->port;
		x->av.slot = x->bk.slot;
		__builtin_memcpy(x->av.addr, be->addr, 16);
		bpf_map_update_elem(&weir_lb_aff, &x->ak, &x->av, BPF_ANY);
	}
	return be;
}

/*
 * from_pod, before the verdict. A packet to a Service frontend gets its
 * backend (the connection's, or a new choice): `lb` then holds the rewrite
 * to it (WEIR_LB_S_FORWARD, made by the caller at once, before conntrack and
 * policy see the translated tuple), and `v` the frontend for the flow event.
 * Returns 0 or a WEIR_DROP_* reason. A pod's answer on a hairpin connection
 * (to the hairpin address) is marked in `lb` for after its verdict. A global
 * function: the verifier checks it once, on its own, not once per path of
 * its callers.
 */
__noinline int weir_lb_from_pod(struct weir_pkt *pkt, __u32 ifindex, struct weir_lb_orig *v,
				struct weir_lb *lb, __u8 scope)
{
	__u32 zero = 0;
	struct weir_lb_scratch *x;

	if (!pkt || !v || !lb || !pkt->has_ports || pkt->kind != WEIR_PKT_NORMAL)
		return 0;
	struct weir_tuple *t = &pkt->t;
	x = bpf_map_lookup_elem(&weir_lb_scratch, &zero);
	if (!x)
		return 0;
	if (scope == WEIR_SVC_SCOPE_CLUSTER_IP && weir_lb_is_hairpin_addr(t->daddr, t->family)) {
		weir_lb_key_make(&x->k, t->saddr, t->saddr, t->sport, t->dport, t, ifindex);
		struct weir_lb_rev_value *r = bpf_map_lookup_elem(&weir_lb_rev, &x->k);
		if (r && (r->flags & WEIR_LB_F_HAIRPIN)) {
			lb->flags = WEIR_LB_S_HAIRPIN_REPLY;
			lb->is_src = 0;
			lb->family = t->family;
			lb->proto = t->proto;
			lb->l4_off = pkt->l4_off;
			lb->old_port = lb->new_port = t->dport;
			__builtin_memcpy(lb->old_addr, t->daddr, 16);
			__builtin_memcpy(lb->new_addr, t->saddr, 16);
		}
		return 0;
	}

	__builtin_memset(&x->sk, 0, sizeof(x->sk));
	if (scope == WEIR_SVC_SCOPE_CLUSTER_IP)
		__builtin_memcpy(x->sk.addr, t->daddr, 16); /* a NodePort's frontend is every node address */
	x->sk.scope = scope;
	x->sk.port = t->dport;
	x->sk.protocol = t->proto;
	x->sk.family = t->family;
	struct weir_svc_value *svc = bpf_map_lookup_elem(&weir_svc, &x->sk);
	if (!svc)
		return 0;
	v->svc = 1;
	__builtin_memcpy(v->addr, t->daddr, 16);
	v->port = t->dport;
	if (svc->count == 0) {
		weir_lb_count(WEIR_LB_CNT_NO_BACKEND);
		return WEIR_DROP_NO_SERVICE_BACKEND;
	}

	weir_lb_key_make(&x->k, t->saddr, t->daddr, t->sport, t->dport, t, ifindex);
	struct weir_lb_fwd_value *f = bpf_map_lookup_elem(&weir_lb_fwd, &x->k);
	int syn = t->proto == IPPROTO_TCP && (pkt->tcp_flags & (WEIR_TCP_SYN | WEIR_TCP_ACK)) == WEIR_TCP_SYN;
	/*
	 * A known connection keeps its backend; TCP for its whole life (a backend
	 * leaving the set keeps its open connections, as with kube-proxy), other
	 * protocols while the set is unchanged or still holds it.
	 */
	if (!f || syn || (f->backend_set != svc->backend_set && t->proto != IPPROTO_TCP)) {
		struct weir_svc_be_value *be = NULL;
		__u16 slot = 0;
		if (scope == WEIR_SVC_SCOPE_CLUSTER_IP && !weir_lb_source_ok(ifindex, t))
			return 0; /* a forged source: dropped as such by the verdict, untranslated */
		if (f && !syn) {
			x->bk.backend_set = svc->backend_set;
			x->bk.slot = f->slot;
			be = bpf_map_lookup_elem(&weir_svc_be, &x->bk);
			if (be && (be->port != f->port || !weir_lb_addr_eq(be->addr, f->addr, t->family)))
				be = NULL;
			slot = f->slot;
		}
		if (!be)
			be = weir_lb_choose(x, svc, t, &slot);
		if (!be) {
			weir_lb_count(WEIR_LB_CNT_NO_BACKEND);
			return WEIR_DROP_NO_SERVICE_BACKEND;
		}
		if (t->proto == IPPROTO_SCTP && be->port != t->dport)
			return WEIR_DROP_SERVICE_UNSUPPORTED; /* CRC32c would have to be recomputed over the packet */
		__builtin_memcpy(x->nf.addr, be->addr, 16);
		x->nf.port = be->port;
		x->nf.slot = slot;
		x->nf.backend_set = svc->backend_set;
		x->nf.svc_id = svc->svc_id;
		x->nf.flags = weir_lb_addr_eq(be->addr, t->saddr, t->family) ? WEIR_LB_F_HAIRPIN : 0;
		if (scope == WEIR_SVC_SCOPE_NODE_PORT && !(svc->flags & WEIR_SVC_F_EXTERNAL_LOCAL) &&
		    (be->flags & WEIR_SVC_BE_F_REMOTE))
			x->nf.flags |= WEIR_LB_F_SNAT; /* Cluster, another node's backend: masqueraded */
		if (weir_lb_store(&weir_lb_fwd, &x->k, f, &x->nf, sizeof(x->nf)))
			return WEIR_DROP_SERVICE_UNSUPPORTED;
		__builtin_memcpy(x->rv.addr, t->daddr, 16);
		x->rv.port = t->dport;
		x->rv._pad = 0;
		x->rv.flags = x->nf.flags;
		weir_lb_key_make(&x->k, x->nf.addr, t->saddr, x->nf.port, t->sport, t,
				 ifindex); /* the reply's */
		if (weir_lb_store(&weir_lb_rev, &x->k, bpf_map_lookup_elem(&weir_lb_rev, &x->k), &x->rv,
				  sizeof(x->rv)))
			return WEIR_DROP_SERVICE_UNSUPPORTED;
		weir_lb_count(WEIR_LB_CNT_NEW);
		if (x->nf.flags & WEIR_LB_F_HAIRPIN)
			weir_lb_count(WEIR_LB_CNT_HAIRPIN);
		f = &x->nf;
	}
	lb->flags = WEIR_LB_S_FORWARD | ((f->flags & WEIR_LB_F_HAIRPIN) ? WEIR_LB_S_HAIRPIN_OUT : 0) |
		    ((f->flags & WEIR_LB_F_SNAT) ? WEIR_LB_S_SNAT : 0);
	lb->is_src = 0;
	lb->family = t->family;
	lb->proto = t->proto;
	lb->l4_off = pkt->l4_off;
	lb->old_port = t->dport;
	lb->new_port = f->port;
	__builtin_memcpy(lb->old_addr, t->daddr, 16);
	__builtin_memcpy(lb->new_addr, f->addr, 16);
	weir_lb_count(WEIR_LB_CNT_FORWARD);
	return 0;
}

/*
 * from_pod, before the verdict: a later fragment (no ports of its own) of a
 * datagram the pod sent to a Service frontend. Its first fragment was
 * translated and left its ports under the frontend's address in weir_frag
 * (weir_full); with them, the connection's backend (weir_lb_fwd) gives this
 * fragment its destination address (`lb`, WEIR_LB_S_FORWARD with no L4
 * offset: only the address changes, the L4 checksum lives in the first
 * fragment), so the backend can reassemble the datagram, as kube-proxy's
 * conntrack reassembles before translating. A fragment whose first one was
 * not seen, or whose connection has no backend, is left as it is (the full
 * path then judges it, and drops it when its ports are unknown). A global
 * function: verified once, on its own.
 */
__noinline int weir_lb_later(struct weir_pkt *pkt, __u32 ifindex, struct weir_lb_orig *v, struct weir_lb *lb)
{
	struct weir_frag_key fk = {};
	struct weir_frag_value *fv;
	__u32 zero = 0;
	struct weir_lb_scratch *x;

	if (!pkt || !v || !lb || pkt->frag != WEIR_FRAG_LATER || pkt->kind != WEIR_PKT_NORMAL ||
	    !weir_is_port_proto(pkt->t.proto))
		return 0;
	struct weir_tuple *t = &pkt->t;
	fk.id = pkt->frag_id;
	fk.protocol = t->proto;
	fk.family = t->family;
	__builtin_memcpy(fk.src_addr, t->saddr, 16);
	__builtin_memcpy(fk.dst_addr, t->daddr, 16);
	fv = bpf_map_lookup_elem(&weir_frag, &fk);
	if (!fv)
		return 0;
	x = bpf_map_lookup_elem(&weir_lb_scratch, &zero);
	if (!x)
		return 0;
	__builtin_memset(&x->sk, 0, sizeof(x->sk));
	__builtin_memcpy(x->sk.addr, t->daddr, 16);
	x->sk.scope = WEIR_SVC_SCOPE_CLUSTER_IP;
	x->sk.port = fv->dst_port;
	x->sk.protocol = t->proto;
	x->sk.family = t->family;
	if (!bpf_map_lookup_elem(&weir_svc, &x->sk))
		return 0;
	weir_lb_key_make(&x->k, t->saddr, t->daddr, fv->src_port, fv->dst_port, t, ifindex);
	struct weir_lb_fwd_value *f = bpf_map_lookup_elem(&weir_lb_fwd, &x->k);
	if (!f || (f->flags & WEIR_LB_F_HAIRPIN))
		return 0;
	v->svc = 1;
	__builtin_memcpy(v->addr, t->daddr, 16);
	v->port = fv->dst_port;
	lb->flags = WEIR_LB_S_FORWARD;
	lb->is_src = 0;
	lb->family = t->family;
	lb->proto = t->proto;
	lb->l4_off = 0;
	lb->old_port = lb->new_port = 0;
	__builtin_memcpy(lb->old_addr, t->daddr, 16);
	__builtin_memcpy(lb->new_addr, f->addr, 16);
	weir_lb_count(WEIR_LB_CNT_FORWARD);
	return 0;
}

/*
 * Makes the forward translation `lb` holds (WEIR_LB_S_FORWARD) and leaves in
 * `lb` what is left for after the verdict: a hairpin connection's source
 * rewrite. `t` becomes the translated tuple. Returns 0 or a WEIR_DROP_* reason.
 */
static __noinline int weir_lb_forward(struct __sk_buff *skb, struct weir_tuple *t, struct weir_lb *lb)
{
	if (!(lb->flags & WEIR_LB_S_FORWARD))
		return 0;
	if (weir_lb_rewrite(skb, lb))
		return WEIR_DROP_SERVICE_UNSUPPORTED;
	__builtin_memcpy(t->daddr, lb->new_addr, 16);
	t->dport = lb->new_port;
	if (!(lb->flags & WEIR_LB_S_HAIRPIN_OUT)) {
		lb->flags = 0;
		return 0;
	}
	lb->flags = WEIR_LB_S_HAIRPIN_OUT;
	lb->is_src = 1;
	lb->old_port = lb->new_port = t->sport;
	__builtin_memcpy(lb->old_addr, t->saddr, 16);
	weir_lb_hairpin_addr(lb->new_addr, t->family);
	return 0;
}

/*
 * The conntrack flags a pod's new connection gets from its translation: set
 * when it was sent to a frontend. Branch-free, so the verifier does not
 * explore the rest of the new connection's path once per outcome.
 */
static __always_inline __u8 weir_lb_ct_flags(const struct weir_lb *lb)
{
	return (lb->orig.svc & 1) * WEIR_CT_F_SERVICE;
}

/*
 * A backend's reply to a translated connection: its source becomes the
 * frontend again after the verdict (marked in `lb`). `to_pod` asks only for
 * the replies of connections whose conntrack entry says they were sent to a
 * frontend (WEIR_CT_F_SERVICE), so other traffic pays no lookup and a reply
 * to a direct connection is never rewritten, even when a translated one of
 * the same ports left its entry behind; `to_node` asks for every packet. A
 * global function: verified once, on its own, not once per path of its
 * callers; it keeps its key in `lb`, since `to_pod` calls it from the full
 * path, whose frames leave it no stack.
 */
__noinline int weir_lb_reverse(const struct weir_pkt *pkt, __u32 ifindex, struct weir_lb *lb)
{
	struct weir_lb_rev_value *r;

	if (!pkt || !lb || !pkt->has_ports || pkt->kind != WEIR_PKT_NORMAL)
		return 0;
	const struct weir_tuple *t = &pkt->t;
	weir_lb_key_make(&lb->rk, t->saddr, t->daddr, t->sport, t->dport, t, ifindex);
	r = bpf_map_lookup_elem(&weir_lb_rev, &lb->rk);
	if (!r)
		return 0;
	lb->flags = WEIR_LB_S_REVERSE;
	lb->is_src = 1;
	lb->family = t->family;
	lb->proto = t->proto;
	lb->l4_off = pkt->l4_off;
	lb->old_port = t->sport;
	lb->new_port = r->port;
	__builtin_memcpy(lb->old_addr, t->saddr, 16);
	__builtin_memcpy(lb->new_addr, r->addr, 16);
	return 0;
}

/* The 16-bit one's complement checksum `csum` (as stored) after the words summing to `diff` changed. */
static __always_inline __u16 weir_csum_adjust(__u16 csum, __s64 diff)
{
	__u64 s = (__u64)(__u16)~csum + (__u32)diff;
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* The words of an ICMP error's quote its translation changes, besides the quoted destination address. */
struct weir_lb_icmp_words {
	__be16 port;   /* quoted destination port */
	__be16 _zero;  /* so that port and _zero are one word pair of their own */
	__be16 l4csum; /* quoted TCP/UDP checksum, when quoted (else equal in both) */
	__be16 ipcsum; /* quoted IPv4 header checksum (IPv6: 0 in both) */
};

/*
 * to_pod: an ICMP error (port unreachable, fragmentation needed, ...) about a
 * connection the pod sent to a Service frontend, found related through the
 * header it quotes (the pod's packet as the backend got it): the quoted
 * destination becomes the frontend again, and so does the error's own source
 * when the backend sent it (a router on the way keeps its address), as
 * kube-proxy's conntrack does for related packets. Without it the pod's
 * socket never learns of the error: no ECONNREFUSED for UDP, no path MTU for
 * TCP. Hairpin connections are left as they are. `lb` holds the lookup's key.
 *
 * Offsets from the packet: the outer IPv4 header's length, an ICMPv6 header
 * right after the IPv6 header (else the error is left as it is), the quoted
 * IPv4 header's length, a quoted TCP/UDP header right after a quoted IPv6
 * header (else left as it is). Checksums updated incrementally (each field an
 * even offset from the start of the ICMP message, so their changes sum as
 * words of it): the quoted IPv4 header's, the quoted TCP/UDP checksum when
 * the quote holds it (pseudo-header included; a quoted IPv4 UDP checksum of 0
 * stays 0), the ICMP checksum over every changed word (ICMPv6: the source in
 * its pseudo-header too), the outer IPv4 header's. Translated errors count as
 * replies translated back (WEIR_LB_CNT_REVERSE).
 *
 * Returns 1 when rewritten, 0 when no translation of it is known (or its
 * headers are not where this looks), -1 when a helper failed or the quote is
 * not what the parser read (the caller drops the packet). A global function:
 * verified once, on its own, not once per path of to_pod.
 */
__noinline int weir_lb_icmp_reverse(struct __sk_buff *skb, const struct weir_pkt *pkt, __u32 ifindex,
				    struct weir_lb *lb)
{
	struct weir_lb_icmp_words o = {}, n = {};
	struct weir_lb_rev_value *r;
	__u32 icmp, in_l3, in_l4, in_dst, l4csum_off, src_off, alen;
	__u8 addr[16] = {};
	__u8 b, v4, proto;

	if (!skb || !pkt || !lb || pkt->kind != WEIR_PKT_ICMP_ERROR || !weir_is_port_proto(pkt->inner.proto))
		return 0;
	const struct weir_tuple *q = &pkt->inner;
	weir_lb_key_make(&lb->rk, q->daddr, q->saddr, q->dport, q->sport, q, ifindex);
	r = bpf_map_lookup_elem(&weir_lb_rev, &lb->rk);
	if (!r || (r->flags & WEIR_LB_F_HAIRPIN))
		return 0;
	v4 = q->family == WEIR_FAMILY_IPV4;
	proto = q->proto;
	alen = v4 ? 4 : 16;
	src_off = v4 ? WEIR_LB_IP4_SRC_OFF : WEIR_LB_IP6_SRC_OFF;
	if (v4) {
		if (bpf_skb_load_bytes(skb, WEIR_LB_ETH_HLEN, &b, 1))
			return -1;
		icmp = WEIR_LB_ETH_HLEN + (b & 0xf) * 4;
		in_l3 = icmp + 8;
		if (bpf_skb_load_bytes(skb, in_l3, &b, 1))
			return -1;
		in_l4 = in_l3 + (b & 0xf) * 4;
		in_dst = in_l3 + 16;
		if (bpf_skb_load_bytes(skb, in_dst, addr, 4))
			return -1;
	} else {
		if (bpf_skb_load_bytes(skb, WEIR_LB_ETH_HLEN + 6, &b, 1) || b != IPPROTO_ICMPV6)
			return 0; /* extension headers before the ICMPv6 header: left as it is */
		icmp = WEIR_LB_ETH_HLEN + 40;
		in_l3 = icmp + 8;
		if (bpf_skb_load_bytes(skb, in_l3 + 6, &b, 1) || b != proto)
			return 0; /* extension headers in the quote: left as it is */
		in_l4 = in_l3 + 40;
		in_dst = in_l3 + 24;
		if (bpf_skb_load_bytes(skb, in_dst, addr, 16))
			return -1;
	}
	if (bpf_skb_load_bytes(skb, in_l4 + 2, &o.port, 2))
		return -1;
	if (!weir_lb_addr_eq(addr, q->daddr, q->family) || o.port != bpf_htons(q->dport))
		return -1;
	n.port = bpf_htons(r->port);

	/* the quoted header's checksums */
	__s64 d_addr = bpf_csum_diff((__be32 *)q->daddr, alen, (__be32 *)r->addr, alen, 0);
	if (d_addr < 0)
		return -1;
	l4csum_off = in_l4 + (proto == IPPROTO_TCP ? WEIR_LB_TCP_CSUM_OFF : WEIR_LB_UDP_CSUM_OFF);
	if (proto != IPPROTO_SCTP && l4csum_off + 2 <= skb->len) {
		if (bpf_skb_load_bytes(skb, l4csum_off, &o.l4csum, 2))
			return -1;
		n.l4csum = o.l4csum;
		if (o.l4csum || proto != IPPROTO_UDP || !v4) {
			__s64 d_port = bpf_csum_diff((__be32 *)&o.port, 4, (__be32 *)&n.port, 4, 0);
			if (d_port < 0)
				return -1;
			n.l4csum = weir_csum_adjust(o.l4csum, (__u64)(__u32)d_addr + (__u32)d_port);
			if (!n.l4csum && proto == IPPROTO_UDP)
				n.l4csum = 0xffff;
		}
	}
	if (v4) {
		if (bpf_skb_load_bytes(skb, in_l3 + 10, &o.ipcsum, 2))
			return -1;
		n.ipcsum = weir_csum_adjust(o.ipcsum, d_addr);
	}
	/* the error's own source: the frontend again when the backend sent it */
	if (bpf_skb_load_bytes(skb, src_off, addr, alen))
		return -1;
	__u8 own = weir_lb_addr_eq(addr, q->daddr, q->family);

	/* the ICMP checksum: every changed word of the message (ICMPv6: and its pseudo-header's source) */
	__be16 icsum;
	if (bpf_skb_load_bytes(skb, icmp + 2, &icsum, 2))
		return -1;
	__s64 d_rest = bpf_csum_diff((__be32 *)&o, sizeof(o), (__be32 *)&n, sizeof(n), 0);
	if (d_rest < 0)
		return -1;
	__u64 d_icmp = (__u64)(__u32)d_addr + (__u32)d_rest;
	if (!v4 && own)
		d_icmp += (__u32)d_addr;
	icsum = weir_csum_adjust(icsum, d_icmp);

	const __u64 f = BPF_F_RECOMPUTE_CSUM;
	if (bpf_skb_store_bytes(skb, in_dst, r->addr, alen, f) ||
	    bpf_skb_store_bytes(skb, in_l4 + 2, &n.port, 2, f))
		return -1;
	if (n.l4csum != o.l4csum && bpf_skb_store_bytes(skb, l4csum_off, &n.l4csum, 2, f))
		return -1;
	if (v4 && bpf_skb_store_bytes(skb, in_l3 + 10, &n.ipcsum, 2, f))
		return -1;
	if (bpf_skb_store_bytes(skb, icmp + 2, &icsum, 2, f))
		return -1;
	if (own) {
		if (v4 && bpf_l3_csum_replace(skb, WEIR_LB_IP4_CSUM_OFF, *(const __u32 *)q->daddr,
					      *(const __u32 *)r->addr, 4))
			return -1;
		if (bpf_skb_store_bytes(skb, src_off, r->addr, alen, f))
			return -1;
	}
	weir_lb_count(WEIR_LB_CNT_REVERSE);
	return 1;
}

/*
 * to_pod, before the verdict: whether a packet from the hairpin address is
 * the pod's own hairpin connection arriving (admitted). Other packets cost
 * one address compare.
 */
static __always_inline void weir_lb_to_pod(const struct weir_pkt *pkt, __u32 ifindex, struct weir_lb *lb)
{
	const struct weir_tuple *t = &pkt->t;
	struct weir_lb_rev_value *r;
	__u32 zero = 0;
	struct weir_lb_scratch *x;

	if (!pkt->has_ports || pkt->kind != WEIR_PKT_NORMAL || !weir_lb_is_hairpin_addr(t->saddr, t->family))
		return;
	x = bpf_map_lookup_elem(&weir_lb_scratch, &zero); /* its key, off the stack */
	if (!x)
		return;
	weir_lb_key_make(&x->k, t->daddr, t->daddr, t->dport, t->sport, t, ifindex);
	r = bpf_map_lookup_elem(&weir_lb_rev, &x->k);
	if (r && (r->flags & WEIR_LB_F_HAIRPIN))
		lb->flags = WEIR_LB_S_HAIRPIN_IN;
}

/*
 * After a packet passed its verdict: the rewrite `lb` holds. Hairpin packets
 * go back into the pod they came from. A rewrite that fails drops the packet.
 */
static __noinline int weir_lb_finish(struct __sk_buff *skb, const struct weir_lb *lb)
{
	if (!(lb->flags & (WEIR_LB_S_REVERSE | WEIR_LB_S_HAIRPIN_OUT | WEIR_LB_S_HAIRPIN_REPLY)))
		return TC_ACT_OK;
	if (weir_lb_rewrite(skb, lb))
		return TC_ACT_SHOT;
	if (lb->flags & WEIR_LB_S_REVERSE) {
		weir_lb_count(WEIR_LB_CNT_REVERSE);
		return TC_ACT_OK;
	}
	/* back into the pod: the frame was addressed to the host side, so the pod
	 * would discard it as another host's; swap the Ethernet addresses */
	__u8 mac[12];
	if (bpf_skb_load_bytes(skb, 0, mac, sizeof(mac)))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, 0, mac + 6, 6, 0) || bpf_skb_store_bytes(skb, 6, mac, 6, 0))
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

/*
 * NodePort masquerade, on `from_node` once the connection's packet was given
 * its remote backend (`t` is the translated tuple, `node` the node address the
 * client addressed): makes sure weir_nat holds both halves of the connection's
 * masquerade, allocating a source port for a new one (weir_abi.h, struct
 * weir_nat_value). A later packet finds its forward half and the reverse half
 * still naming it, and reuses the port. Returns 0, WEIR_DROP_NAT_NO_PORT, or
 * WEIR_DROP_SERVICE_UNSUPPORTED for SCTP (its port cannot change here).
 */
static __noinline int weir_nat_masquerade(struct weir_lb_scratch *x, const struct weir_tuple *t,
					  const __u8 *node, __u32 ifindex)
{
	struct weir_nat_value *fw, *rv;

	if (t->proto == IPPROTO_SCTP)
		return WEIR_DROP_SERVICE_UNSUPPORTED; /* a new source port: CRC32c over the whole packet */
	weir_lb_key_make(&x->k, t->saddr, t->daddr, t->sport, t->dport, t, ifindex);
	fw = bpf_map_lookup_elem(&weir_nat, &x->k);
	if (fw && (fw->flags & WEIR_NAT_F_FORWARD) && weir_lb_addr_eq(fw->addr, node, t->family)) {
		weir_lb_key_make(&x->nk, t->daddr, fw->addr, t->dport, fw->port, t, ifindex);
		rv = bpf_map_lookup_elem(&weir_nat, &x->nk);
		if (rv && (rv->flags & WEIR_NAT_F_REVERSE) && rv->port == t->sport &&
		    weir_lb_addr_eq(rv->addr, t->saddr, t->family))
			return 0;
		/* its reverse half was evicted (and its port perhaps given to another): a new port */
	}
	__builtin_memset(&x->nv, 0, sizeof(x->nv));
	__builtin_memcpy(x->nv.addr, t->saddr, 16);
	x->nv.port = t->sport;
	x->nv.flags = WEIR_NAT_F_REVERSE;
	__u16 port = 0;
	for (int i = 0; i < WEIR_NAT_PORT_TRIES; i++) {
		__u16 p = WEIR_NAT_PORT_MIN +
			  bpf_get_prandom_u32() % (WEIR_NAT_PORT_MAX - WEIR_NAT_PORT_MIN + 1);
		weir_lb_key_make(&x->nk, t->daddr, node, t->dport, p, t, ifindex);
		if (!bpf_map_update_elem(&weir_nat, &x->nk, &x->nv, BPF_NOEXIST)) {
			port = p;
			break;
		}
	}
	if (!port) {
		weir_lb_count(WEIR_LB_CNT_SNAT_FULL);
		return WEIR_DROP_NAT_NO_PORT;
	}
	__builtin_memset(&x->nv, 0, sizeof(x->nv));
	__builtin_memcpy(x->nv.addr, node, 16);
	x->nv.port = port;
	x->nv.flags = WEIR_NAT_F_FORWARD;
	if (bpf_map_update_elem(&weir_nat, &x->k, &x->nv, BPF_ANY)) {
		bpf_map_delete_elem(&weir_nat, &x->nk);
		weir_lb_count(WEIR_LB_CNT_SNAT_FULL);
		return WEIR_DROP_NAT_NO_PORT;
	}
	weir_lb_count(WEIR_LB_CNT_SNAT_NEW);
	return 0;
}

/*
 * NodePort, on tc ingress of the node's external interface: a packet to one
 * of the node's own addresses (ipcache identity host) at a NodePort gets a
 * backend as a pod's packet to a ClusterIP does, its source kept, so the
 * backend's ingress policy judges the client's own address. The state is
 * keyed by the external interface, where `to_node` (its tc egress) gives the
 * backend's reply the node address and NodePort back as its source. The
 * node's other traffic passes untouched: only pods are policed.
 *
 * externalTrafficPolicy Cluster with a backend on another node: the
 * connection is also masqueraded (weir_nat_masquerade). Here only its
 * destination is rewritten; its source becomes the node address and the
 * allocated port on `to_node`, as it leaves, and the backend's reply to that
 * port is given back its client's address here. Both steps keep a source
 * address the kernel accepts on the way through: a packet received with one
 * of the node's own addresses as its source is dropped as a martian. A packet
 * to the node at a port of the masquerade range that belongs to no
 * masqueraded connection passes untouched, as the node's own traffic.
 */
static __always_inline int weir_lb_from_node(struct __sk_buff *skb)
{
	struct weir_pkt pkt = {};
	struct weir_verdict v = {};
	__u32 zero = 0;
	struct weir_lb_scratch *x;
	int reason;

	if (weir_parse(skb, &pkt) || !pkt.has_ports || pkt.kind != WEIR_PKT_NORMAL)
		return TC_ACT_OK;
	if (weir_ipcache_identity(pkt.t.daddr, pkt.t.family) != WEIR_ID_HOST)
		return TC_ACT_OK;
	x = bpf_map_lookup_elem(&weir_lb_scratch, &zero);
	if (!x)
		return TC_ACT_SHOT;
	if (pkt.t.dport >= WEIR_NAT_PORT_MIN) {
		/* a masqueraded connection's reply: its destination becomes the client again */
		weir_lb_key_make(&x->k, pkt.t.saddr, pkt.t.daddr, pkt.t.sport, pkt.t.dport, &pkt.t,
				 skb->ifindex);
		struct weir_nat_value *rv = bpf_map_lookup_elem(&weir_nat, &x->k);
		if (rv && (rv->flags & WEIR_NAT_F_REVERSE)) {
			x->lb.flags = 0;
			x->lb.is_src = 0;
			x->lb.family = pkt.t.family;
			x->lb.proto = pkt.t.proto;
			x->lb.l4_off = pkt.l4_off;
			x->lb.old_port = pkt.t.dport;
			x->lb.new_port = rv->port;
			__builtin_memcpy(x->lb.old_addr, pkt.t.daddr, 16);
			__builtin_memcpy(x->lb.new_addr, rv->addr, 16);
			return weir_lb_rewrite(skb, &x->lb) ? TC_ACT_SHOT : TC_ACT_OK;
		}
	}
	x->lb.flags = 0;
	__builtin_memset(&x->lb.orig, 0, sizeof(x->lb.orig));
	reason = weir_lb_from_pod(&pkt, skb->ifindex, &x->lb.orig, &x->lb, WEIR_SVC_SCOPE_NODE_PORT);
	if (!reason && (x->lb.flags & WEIR_LB_S_SNAT)) {
		/* before the rewrite: a connection that gets no port leaves nothing behind */
		struct weir_tuple *nt = &pkt.t;
		__u8 node[16];
		__builtin_memcpy(node, nt->daddr, 16);
		__builtin_memcpy(nt->daddr, x->lb.new_addr, 16);
		__u16 np = nt->dport;
		nt->dport = x->lb.new_port;
		reason = weir_nat_masquerade(x, nt, node, skb->ifindex);
		__builtin_memcpy(nt->daddr, node, 16);
		nt->dport = np;
	}
	if (!reason)
		reason = weir_lb_forward(skb, &pkt.t, &x->lb);
	if (!reason)
		return TC_ACT_OK;
	const struct weir_endpoint none = {};
	v.src_identity = weir_ipcache_identity(pkt.t.saddr, pkt.t.family);
	v.dst_identity = WEIR_ID_HOST;
	v.verdict = WEIR_VERDICT_DROPPED;
	v.drop_reason = reason;
	v.flags = WEIR_FLOW_F_NEW | WEIR_FLOW_F_SERVICE;
	v.orig = &x->lb.orig;
	weir_count(WEIR_DIR_INGRESS, WEIR_VERDICT_DROPPED, reason, skb->len);
	weir_emit(skb, &none, WEIR_DIR_INGRESS, &pkt, &v);
	return TC_ACT_SHOT;
}

/*
 * On tc egress of the node's external interface: a NodePort connection's
 * reply gets the node address and NodePort back as its source (weir_lb_rev),
 * and a masqueraded connection's packet to its remote backend gets the node
 * address and its allocated port as its source (weir_nat's forward half).
 * Everything else passes untouched.
 */
static __always_inline int weir_lb_to_node(struct __sk_buff *skb)
{
	struct weir_pkt pkt = {};
	struct weir_lb lb = {};
	__u32 zero = 0;
	struct weir_lb_scratch *x;

	if (weir_parse(skb, &pkt))
		return TC_ACT_OK;
	weir_lb_reverse(&pkt, skb->ifindex, &lb);
	if (lb.flags & WEIR_LB_S_REVERSE)
		return weir_lb_finish(skb, &lb);
	if (!pkt.has_ports || pkt.kind != WEIR_PKT_NORMAL)
		return TC_ACT_OK;
	x = bpf_map_lookup_elem(&weir_lb_scratch, &zero);
	if (!x)
		return TC_ACT_OK;
	const struct weir_tuple *t = &pkt.t;
	weir_lb_key_make(&x->k, t->saddr, t->daddr, t->sport, t->dport, t, skb->ifindex);
	struct weir_nat_value *fw = bpf_map_lookup_elem(&weir_nat, &x->k);
	if (!fw || !(fw->flags & WEIR_NAT_F_FORWARD))
		return TC_ACT_OK;
	lb.is_src = 1;
	lb.family = t->family;
	lb.proto = t->proto;
	lb.l4_off = pkt.l4_off;
	lb.old_port = t->sport;
	lb.new_port = fw->port;
	__builtin_memcpy(lb.old_addr, t->saddr, 16);
	__builtin_memcpy(lb.new_addr, fw->addr, 16);
	return weir_lb_rewrite(skb, &lb) ? TC_ACT_SHOT : TC_ACT_OK;
}

#endif
