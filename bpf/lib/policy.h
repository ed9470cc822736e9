/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Policy verdict for a new connection: O(1) hash lookups from the most to the
 * least specific key, skipping kinds the endpoint has none of; port ranges via
 * the LPM map only when the endpoint has ranges.
 */
#ifndef WEIR_LIB_POLICY_H
#define WEIR_LIB_POLICY_H

#include "maps.h"

static __always_inline int weir_policy_hit(struct weir_policy_key *k)
{
	struct weir_policy_value *v = bpf_map_lookup_elem(&weir_policy, k);
	return v && (v->flags & WEIR_POLICY_F_ALLOW);
}

static __always_inline int weir_range_hit(__u32 ep_id, __u32 identity, __u8 dir, __u8 proto, __u16 port)
{
	struct weir_policy_range_key k = {
		.prefixlen = WEIR_POLICY_RANGE_PREFIX_BASE + 16,
		.endpoint_id = bpf_htonl(ep_id),
		.identity = bpf_htonl(identity),
		.direction = dir,
		.protocol = proto,
		.port = bpf_htons(port),
	};
	struct weir_policy_value *v = bpf_map_lookup_elem(&weir_policy_rng, &k);
	return v && (v->flags & WEIR_POLICY_F_ALLOW);
}

/* Returns the WEIR_MATCH_* kind that allows the connection, or WEIR_MATCH_NONE. */
static __always_inline __u8 weir_policy_verdict(const struct weir_endpoint *ep, __u8 dir, __u32 remote,
						__u8 proto, __u16 dport)
{
	__u32 iso = dir == WEIR_DIR_INGRESS ? WEIR_EP_F_INGRESS_ISOLATED : WEIR_EP_F_EGRESS_ISOLATED;
	__u32 kinds;

	if (!(ep->flags & iso))
		return WEIR_MATCH_NOT_ISOLATED;
	kinds = (ep->flags >> WEIR_EP_KINDS_SHIFT(dir)) & 0xff;
	if (!kinds)
		return WEIR_MATCH_NONE;

	struct weir_policy_key k = {
		.endpoint_id = ep->endpoint_id,
		.identity = remote,
		.direction = dir,
		.protocol = proto,
		.port = dport,
	};
	if ((kinds & WEIR_KIND_ID_PORT) && dport && weir_policy_hit(&k))
		return WEIR_MATCH_L3_L4;
	if ((kinds & WEIR_KIND_ID_RANGE) && dport &&
	    weir_range_hit(ep->endpoint_id, remote, dir, proto, dport))
		return WEIR_MATCH_L3_L4;
	k.port = 0;
	if ((kinds & WEIR_KIND_ID_PROTO) && weir_policy_hit(&k))
		return WEIR_MATCH_L3_ONLY;
	k.protocol = 0;
	if ((kinds & WEIR_KIND_ID_ALL) && weir_policy_hit(&k))
		return WEIR_MATCH_L3_ONLY;

	k.identity = WEIR_ID_ANY;
	k.protocol = proto;
	k.port = dport;
	if ((kinds & WEIR_KIND_ANY_PORT) && dport && weir_policy_hit(&k))
		return WEIR_MATCH_L4_ONLY;
	if ((kinds & WEIR_KIND_ANY_RANGE) && dport &&
	    weir_range_hit(ep->endpoint_id, WEIR_ID_ANY, dir, proto, dport))
		return WEIR_MATCH_L4_ONLY;
	k.port = 0;
	if ((kinds & WEIR_KIND_ANY_PROTO) && weir_policy_hit(&k))
		return WEIR_MATCH_ALL;
	k.protocol = 0;
	if ((kinds & WEIR_KIND_ANY_ALL) && weir_policy_hit(&k))
		return WEIR_MATCH_ALL;
	return WEIR_MATCH_NONE;
}

#endif
