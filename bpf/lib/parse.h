/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet parsing: Ethernet, ARP, IPv4, IPv6 (extension headers, fragments),
 * TCP, UDP, SCTP, ICMP, ICMPv6 and the inner header quoted by ICMP errors.
 * Anything shorter than its own length fields say is TRUNCATED; impossible
 * values are MALFORMED. Nothing is guessed.
 */
#ifndef WEIR_LIB_PARSE_H
#define WEIR_LIB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "weir_abi.h"

/* What kind of packet this is, for the verdict logic. */
enum weir_pkt_kind {
	WEIR_PKT_NORMAL = 0,
	WEIR_PKT_ALWAYS,     /* ARP, neighbour discovery, MLD: never policed */
	WEIR_PKT_ICMP_ERROR, /* carries `inner`: the quoted header */
};

enum weir_frag_kind {
	WEIR_FRAG_NONE = 0,
	WEIR_FRAG_FIRST,
	WEIR_FRAG_LATER,
};

struct weir_tuple {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport; /* host byte order; ICMP echo: id on the request side */
	__u16 dport;
	__u8 proto;
	__u8 family;
};

struct weir_pkt {
	struct weir_tuple t;
	struct weir_tuple inner;
	__u32 frag_id;
	__u16 icmp_type; /* for events: ICMP type/code as the "ports" */
	__u16 icmp_code;
	__u8 kind;
	__u8 frag;
	__u8 tcp_flags;
	__u8 has_ports; /* TCP, UDP, SCTP */
};

struct sctphdr_min {
	__be16 source;
	__be16 dest;
	__be32 vtag;
	__be32 checksum;
};

struct weir_ports {
	__be16 source;
	__be16 dest;
};

struct weir_icmp_min {
	__u8 type;
	__u8 code;
	__be16 csum;
	__be16 id;
	__be16 seq;
};

static __always_inline int weir_is_port_proto(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP;
}

static __always_inline int weir_is_icmp4_error(__u8 type)
{
	return type == WEIR_ICMP_DEST_UNREACH || type == WEIR_ICMP_SOURCE_QUENCH ||
	       type == WEIR_ICMP_REDIRECT || type == WEIR_ICMP_TIME_EXCEEDED ||
	       type == WEIR_ICMP_PARAMETERPROB;
}

static __always_inline int weir_is_icmp6_error(__u8 type)
{
	return type == ICMPV6_DEST_UNREACH || type == ICMPV6_PKT_TOOBIG || type == ICMPV6_TIME_EXCEED ||
	       type == ICMPV6_PARAMPROB;
}

static __always_inline int weir_is_icmp6_always(__u8 type)
{
	return (type >= WEIR_ICMPV6_ND_FIRST && type <= WEIR_ICMPV6_ND_LAST) || type == ICMPV6_MGM_QUERY ||
	       type == ICMPV6_MGM_REPORT || type == ICMPV6_MGM_REDUCTION || type == ICMPV6_MLD2_REPORT;
}

/* Ports of a quoted (inner) header; the quote must hold at least the ports. */
static __always_inline int weir_parse_inner_l4(void *l4, void *data_end, struct weir_tuple *t)
{
	if (weir_is_port_proto(t->proto)) {
		struct weir_ports *p = l4;
		if ((void *)(p + 1) > data_end)
			return WEIR_DROP_TRUNCATED;
		t->sport = bpf_ntohs(p->source);
		t->dport = bpf_ntohs(p->dest);
	} else if (t->proto == IPPROTO_ICMP || t->proto == IPPROTO_ICMPV6) {
		struct weir_icmp_min *ic = l4;
		if ((void *)(ic + 1) > data_end)
			return WEIR_DROP_TRUNCATED;
		/* a quoted echo request is the request side of its connection */
		if (ic->type == WEIR_ICMP_ECHO || ic->type == ICMPV6_ECHO_REQUEST)
			t->sport = bpf_ntohs(ic->id);
		else if (ic->type == WEIR_ICMP_ECHOREPLY || ic->type == ICMPV6_ECHO_REPLY)
			t->dport = bpf_ntohs(ic->id);
	}
	return 0;
}

static __always_inline int weir_parse_inner(void *p, void *data_end, __u8 family, struct weir_tuple *t)
{
	t->family = family;
	if (family == WEIR_FAMILY_IPV4) {
		struct iphdr *ip = p;
		if ((void *)(ip + 1) > data_end)
			return WEIR_DROP_TRUNCATED;
		if (ip->version != 4 || ip->ihl < 5)
			return WEIR_DROP_MALFORMED;
		__builtin_memcpy(t->saddr, &ip->saddr, 4);
		__builtin_memcpy(t->daddr, &ip->daddr, 4);
		t->proto = ip->protocol;
		return weir_parse_inner_l4(p + ip->ihl * 4, data_end, t);
	}
	struct ipv6hdr *ip6 = p;
	if ((void *)(ip6 + 1) > data_end)
		return WEIR_DROP_TRUNCATED;
	if (ip6->version != 6)
		return WEIR_DROP_MALFORMED;
	__builtin_memcpy(t->saddr, &ip6->saddr, 16);
	__builtin_memcpy(t->daddr, &ip6->daddr, 16);
	t->proto = ip6->nexthdr;
	return weir_parse_inner_l4(ip6 + 1, data_end, t);
}

/* L4 of the outer packet (first fragment or unfragmented). */
static __always_inline int weir_parse_l4(void *l4, void *data_end, struct weir_pkt *pkt)
{
	__u8 proto = pkt->t.proto;

	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > data_end)
			return WEIR_DROP_TRUNCATED;
		if (th->doff < 5)
			return WEIR_DROP_MALFORMED;
		if (l4 + th->doff * 4 > data_end)
			return WEIR_DROP_TRUNCATED;
		pkt->t.sport = bpf_ntohs(th->source);
		pkt->t.dport = bpf_ntohs(th->dest);
		pkt->tcp_flags = ((__u8 *)th)[13];
		pkt->has_ports = 1;
		return 0;
	}
	if (proto == IPPROTO_UDP || proto == IPPROTO_SCTP) {
		/* UDP header is 8 bytes, SCTP common header 12 */
		if (proto == IPPROTO_UDP) {
			struct udphdr *uh = l4;
			if ((void *)(uh + 1) > data_end)
				return WEIR_DROP_TRUNCATED;
		} else {
			struct sctphdr_min *sh = l4;
			if ((void *)(sh + 1) > data_end)
				return WEIR_DROP_TRUNCATED;
		}
		struct weir_ports *p = l4;
		pkt->t.sport = bpf_ntohs(p->source);
		pkt->t.dport = bpf_ntohs(p->dest);
		pkt->has_ports = 1;
		return 0;
	}
	if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
		struct weir_icmp_min *ic = l4;
		if ((void *)(ic + 1) > data_end)
			return WEIR_DROP_TRUNCATED;
		pkt->icmp_type = ic->type;
		pkt->icmp_code = ic->code;
		if (proto == IPPROTO_ICMP) {
			if (ic->type == WEIR_ICMP_ECHO) {
				pkt->t.sport = bpf_ntohs(ic->id);
			} else if (ic->type == WEIR_ICMP_ECHOREPLY) {
				pkt->t.dport = bpf_ntohs(ic->id);
			} else if (weir_is_icmp4_error(ic->type)) {
				pkt->kind = WEIR_PKT_ICMP_ERROR;
				return weir_parse_inner(ic + 1, data_end, WEIR_FAMILY_IPV4, &pkt->inner);
			}
			return 0;
		}
		if (ic->type == ICMPV6_ECHO_REQUEST) {
			pkt->t.sport = bpf_ntohs(ic->id);
		} else if (ic->type == ICMPV6_ECHO_REPLY) {
			pkt->t.dport = bpf_ntohs(ic->id);
		} else if (weir_is_icmp6_error(ic->type)) {
			pkt->kind = WEIR_PKT_ICMP_ERROR;
			return weir_parse_inner(ic + 1, data_end, WEIR_FAMILY_IPV6, &pkt->inner);
		} else if (weir_is_icmp6_always(ic->type)) {
			pkt->kind = WEIR_PKT_ALWAYS;
		}
		return 0;
	}
	return 0;
}

static __always_inline int weir_parse_ipv4(struct __sk_buff *skb, void *data, void *data_end,
					   struct weir_pkt *pkt)
{
	struct iphdr *ip = data + sizeof(struct ethhdr);
	__u32 hlen, tot;
	__u16 frag_off;

	if ((void *)(ip + 1) > data_end)
		return WEIR_DROP_TRUNCATED;
	pkt->t.family = WEIR_FAMILY_IPV4;
	__builtin_memcpy(pkt->t.saddr, &ip->saddr, 4);
	__builtin_memcpy(pkt->t.daddr, &ip->daddr, 4);
	pkt->t.proto = ip->protocol;
	if (ip->version != 4 || ip->ihl < 5)
		return WEIR_DROP_MALFORMED;
	hlen = ip->ihl * 4;
	tot = bpf_ntohs(ip->tot_len);
	if (tot == 0 && skb->gso_size)
		tot = skb->len - sizeof(struct ethhdr); /* BIG TCP: a GSO packet over 64 KiB has no length */
	if (tot < hlen)
		return WEIR_DROP_MALFORMED;
	if ((void *)ip + hlen > data_end || sizeof(struct ethhdr) + tot > skb->len)
		return WEIR_DROP_TRUNCATED;

	frag_off = bpf_ntohs(ip->frag_off);
	if (frag_off & WEIR_IP_OFFSET) {
		pkt->frag = WEIR_FRAG_LATER;
		pkt->frag_id = bpf_ntohs(ip->id);
		return 0;
	}
	if (frag_off & WEIR_IP_MF) {
		pkt->frag = WEIR_FRAG_FIRST;
		pkt->frag_id = bpf_ntohs(ip->id);
	}
	return weir_parse_l4((void *)ip + hlen, data_end, pkt);
}

struct weir_ipv6_opt {
	__u8 nexthdr;
	__u8 hdrlen;
};

struct weir_ipv6_frag {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset << 3 | M */
	__be32 identification;
};

static __always_inline int weir_parse_ipv6(struct __sk_buff *skb, void *data, void *data_end,
					   struct weir_pkt *pkt)
{
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
	__u32 off = sizeof(struct ethhdr) + sizeof(struct ipv6hdr);
	__u8 nh;
	int i;

	if ((void *)(ip6 + 1) > data_end)
		return WEIR_DROP_TRUNCATED;
	pkt->t.family = WEIR_FAMILY_IPV6;
	__builtin_memcpy(pkt->t.saddr, &ip6->saddr, 16);
	__builtin_memcpy(pkt->t.daddr, &ip6->daddr, 16);
	if (ip6->version != 6)
		return WEIR_DROP_MALFORMED;
	if (off + bpf_ntohs(ip6->payload_len) > skb->len)
		return WEIR_DROP_TRUNCATED;
	nh = ip6->nexthdr;

#pragma unroll
	for (i = 0; i < WEIR_IPV6_EXT_MAX; i++) {
		if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS ||
		    nh == IPPROTO_AH) {
			struct weir_ipv6_opt *o = data + off;
			if ((void *)(o + 1) > data_end)
				return WEIR_DROP_TRUNCATED;
			nh = o->nexthdr;
			off += nh == IPPROTO_AH ? ((__u32)o->hdrlen + 2) * 4 : ((__u32)o->hdrlen + 1) * 8;
		} else if (nh == IPPROTO_FRAGMENT) {
			struct weir_ipv6_frag *f = data + off;
			if ((void *)(f + 1) > data_end)
				return WEIR_DROP_TRUNCATED;
			nh = f->nexthdr;
			off += sizeof(*f);
			pkt->frag_id = bpf_ntohl(f->identification);
			if (bpf_ntohs(f->frag_off) & WEIR_IP6_OFFSET_MASK)
				pkt->frag = WEIR_FRAG_LATER;
			else if (bpf_ntohs(f->frag_off) & WEIR_IP6_MF)
				pkt->frag = WEIR_FRAG_FIRST;
		} else {
			break;
		}
		if (off > WEIR_L3_MAX_BYTES)
			return WEIR_DROP_MALFORMED;
	}
	if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS || nh == IPPROTO_AH ||
	    nh == IPPROTO_FRAGMENT)
		return WEIR_DROP_MALFORMED; /* more extension headers than we walk */
	pkt->t.proto = nh;
	if (pkt->frag == WEIR_FRAG_LATER)
		return 0;
	if (off > WEIR_L3_MAX_BYTES)
		return WEIR_DROP_MALFORMED;
	return weir_parse_l4(data + off, data_end, pkt);
}

/* Parses what the skb's linear area holds. */
static __always_inline int weir_parse_linear(struct __sk_buff *skb, struct weir_pkt *pkt)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return WEIR_DROP_TRUNCATED;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return weir_parse_ipv4(skb, data, data_end, pkt);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return weir_parse_ipv6(skb, data, data_end, pkt);
	if (eth->h_proto == bpf_htons(ETH_P_ARP)) {
		pkt->kind = WEIR_PKT_ALWAYS;
		return 0;
	}
	return WEIR_DROP_UNSUPPORTED_L3;
}

/*
 * Fills `pkt` from the skb. Returns 0 or a WEIR_DROP_* reason. Non-IP:
 * ARP is WEIR_PKT_ALWAYS, anything else WEIR_DROP_UNSUPPORTED_L3.
 * Headers are read from the linear area; only when they run past it while
 * the packet holds more are up to WEIR_PULL_BYTES pulled in and the packet
 * parsed again, so a packet whose headers are already linear (the usual
 * case) is never pulled, i.e. its payload is never copied.
 */
static __always_inline int weir_parse(struct __sk_buff *skb, struct weir_pkt *pkt)
{
	int reason = 0;

	/* a loop, not two copies of the parser: the program stays its size */
#pragma clang loop unroll(disable)
	for (int pass = 0; pass < 2; pass++) {
		reason = weir_parse_linear(skb, pkt);
		long linear = (long)skb->data_end - (long)skb->data;
		if (pass || reason != WEIR_DROP_TRUNCATED || linear >= WEIR_PULL_BYTES || linear >= skb->len)
			break;
		if (bpf_skb_pull_data(skb, skb->len < WEIR_PULL_BYTES ? skb->len : WEIR_PULL_BYTES))
			break;
		__builtin_memset(pkt, 0, sizeof(*pkt));
	}
	return reason;
}

#endif
