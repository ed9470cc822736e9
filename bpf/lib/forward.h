/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Local delivery: an IPv4 packet from_pod passed, addressed to another pod
 * of this node, goes straight to that pod's host-side veth (bpf_redirect to
 * its egress, where its to_pod judges it) instead of through the node's IP
 * stack (receive, routing, netfilter's forward hooks, neighbour output).
 * The route and the neighbour come from the node's own tables
 * (bpf_fib_lookup, the same answer the stack would find); anything the
 * lookup does not resolve, or that does not end on a weir endpoint, is left
 * to the stack as before. A connection whose packets the lookup found not
 * to end on a local pod is marked so (WEIR_CT_F_NOT_LOCAL on the conntrack
 * entry the fast path passed them on): its later packets skip the lookup,
 * so traffic to other nodes and the world pays it once per connection and
 * direction. The mark only ever skips the shortcut (the stack then forwards,
 * as without it); a SYN that restarts the entry clears it.
 */
#ifndef WEIR_LIB_FORWARD_H
#define WEIR_LIB_FORWARD_H

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include "maps.h"

#ifndef AF_INET
#define AF_INET 2
#endif

/*
 * `ct`: the conntrack entry the fast path passed the packet on (NULL on the
 * full path). TC_ACT_OK (the stack forwards it) unless the packet is a plain IPv4 packet
 * (no options; TTL above 1, so the stack answers an expiring one) whose
 * route, as the node's FIB has it with forwarding on, leaves through a
 * resolved neighbour on another weir endpoint's interface within its MTU:
 * then the TTL is decremented as the stack would, the Ethernet addresses
 * are the route's, and the packet is redirected to that interface's egress.
 */
static __noinline int weir_to_local_pod(struct __sk_buff *skb, struct weir_ct_value *ct)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct bpf_fib_lookup fib = {};
	__u32 oif;
	__u32 sum;
	long rc;

	if (ct && (ct->flags & WEIR_CT_F_NOT_LOCAL))
		return TC_ACT_OK;
	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 || ip->ttl <= 1)
		return TC_ACT_OK;
	fib.family = AF_INET;
	fib.tos = ip->tos;
	fib.l4_protocol = ip->protocol;
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = ip->daddr;
	fib.ifindex = skb->ifindex;
	/* tot_len 0: the MTU check is the kernel's own for this skb (GSO included) */
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	oif = fib.ifindex;
	if (rc == BPF_FIB_LKUP_RET_SUCCESS && oif != skb->ifindex &&
	    bpf_map_lookup_elem(&weir_endpoints, &oif))
		goto local;
	/* not a pod of this node, whatever the packet's size: none of the connection's packets will be */
	if (ct && rc != BPF_FIB_LKUP_RET_NO_NEIGH && rc != BPF_FIB_LKUP_RET_FRAG_NEEDED)
		ct->flags |= WEIR_CT_F_NOT_LOCAL;
	return TC_ACT_OK;
local:
	/* ip_decrease_ttl */
	sum = ip->check;
	sum += bpf_htons(0x0100);
	ip->check = (__u16)(sum + (sum >= 0xffff));
	ip->ttl--;
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	return bpf_redirect(oif, 0);
}

#endif
