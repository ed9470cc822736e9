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
	__u16 l4_off; /* TCP, UDP, SCTP header's offset from the frame's start (0: none, a later fragment) */
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

static __always_inline int weir_is_ipv6_ext(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS || nh == IPPROTO_AH ||
	       nh == IPPROTO_FRAGMENT;
}

/* What weir_ipv6_exts() found. */
struct weir_ipv6_walk {
	__u32 ext;     /* bytes of extension headers walked */
	__u32 frag_id; /* identification of the last fragment header */
	__u8 nh;       /* in: the fixed header's next header; out: the upper-layer protocol */
	__u8 frag;     /* enum weir_frag_kind */
	__u16 _pad;
};

/*
 * Walks the IPv6 extension headers that start at offset `start` of the
 * linear data, up to offset `end` (the packet's own end: its payload length,
 * or the end of an ICMPv6 error's quote, never past the linear data). Each
 * header is sized by its own type: AH by (len + 2) * 4, the fragment header
 * 8 bytes, the others (len + 1) * 8. A non-first fragment ends the walk: what
 * follows its fragment header is payload. At most WEIR_IPV6_EXT_MAX headers
 * and WEIR_IPV6_EXT_BYTES bytes are walked; a longer chain is MALFORMED (the
 * documented walk limit).
 *
 * A global function: the verifier checks it once, on its own, instead of
 * once per path of each caller (the packet and the quote of an ICMPv6 error
 * each walk a chain; inlined, the two walks multiply past its limit).
 */
__noinline int weir_ipv6_exts(struct __sk_buff *skb, __u32 start, __u32 end, struct weir_ipv6_walk *w)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 ext = 0;
	__u8 nh;
	int i;

	if (!w)
		return WEIR_DROP_MALFORMED;
	nh = w->nh;
	if (start > WEIR_PULL_BYTES || end < start)
		return WEIR_DROP_TRUNCATED;
	__u32 avail = end - start;
	__u64 off = start;
	asm volatile("%[off] &= 0x3ff" : [off] "+r"(off)); /* a bound the verifier sees (start <= 512) */
	void *h = data + off;
#pragma clang loop unroll(disable)
	for (i = 0; i < WEIR_IPV6_EXT_MAX; i++) {
		if (!weir_is_ipv6_ext(nh))
			break;
		if (nh == IPPROTO_FRAGMENT) {
			struct weir_ipv6_frag *f = h + ext;
			if ((void *)(f + 1) > data_end || ext + sizeof(*f) > avail)
				return WEIR_DROP_TRUNCATED;
			nh = f->nexthdr;
			ext += sizeof(*f);
			w->frag_id = bpf_ntohl(f->identification);
			if (bpf_ntohs(f->frag_off) & WEIR_IP6_OFFSET_MASK) {
				w->frag = WEIR_FRAG_LATER;
				w->nh = nh;
				w->ext = ext;
				return 0; /* the rest is payload */
			}
			if (bpf_ntohs(f->frag_off) & WEIR_IP6_MF)
				w->frag = WEIR_FRAG_FIRST;
		} else {
			struct weir_ipv6_opt *o = h + ext;
			__u32 len;
			if ((void *)(o + 1) > data_end || ext + sizeof(*o) > avail)
				return WEIR_DROP_TRUNCATED;
			/* sized by this header's own type, before moving to the next */
			if (nh == IPPROTO_AH && o->hdrlen < 1)
				return WEIR_DROP_MALFORMED; /* shorter than AH's own fixed fields */
			len = nh == IPPROTO_AH ? ((__u32)o->hdrlen + 2) * 4 : ((__u32)o->hdrlen + 1) * 8;
			nh = o->nexthdr;
			if (ext + len > avail)
				return WEIR_DROP_TRUNCATED;
			ext += len;
		}
		if (ext > WEIR_IPV6_EXT_BYTES)
			return WEIR_DROP_MALFORMED;
	}
	if (weir_is_ipv6_ext(nh))
		return WEIR_DROP_MALFORMED; /* more extension headers than we walk */
	w->nh = nh;
	w->ext = ext;
	return 0;
}

/* weir_ipv6_exts() over the chain at `h`, up to `end` (a packet pointer; clipped to the linear data). */
static __always_inline int weir_ipv6_walk(struct __sk_buff *skb, void *h, void *end, struct weir_ipv6_walk *w)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	if (end > data_end)
		end = data_end;
	if (end < h)
		return WEIR_DROP_TRUNCATED;
	return weir_ipv6_exts(skb, h - data, end - data, w);
}

/* `p` .. `p + n` lies inside both the linear data and the packet's own length. */
#define WEIR_FITS(p, n, data_end, end) ((void *)(p) + (n) <= (data_end) && (void *)(p) + (n) <= (end))

/* Ports of a quoted (inner) header; the quote must hold at least the ports. */
static __always_inline int weir_parse_inner_l4(void *l4, void *data_end, void *end, struct weir_tuple *t)
{
	if (weir_is_port_proto(t->proto)) {
		struct weir_ports *p = l4;
		if (!WEIR_FITS(p, sizeof(*p), data_end, end))
			return WEIR_DROP_TRUNCATED;
		t->sport = bpf_ntohs(p->source);
		t->dport = bpf_ntohs(p->dest);
	} else if (t->proto == IPPROTO_ICMP || t->proto == IPPROTO_ICMPV6) {
		struct weir_icmp_min *ic = l4;
		if (!WEIR_FITS(ic, sizeof(*ic), data_end, end))
			return WEIR_DROP_TRUNCATED;
		/* a quoted echo request is the request side of its connection */
		if (ic->type == WEIR_ICMP_ECHO || ic->type == ICMPV6_ECHO_REQUEST)
			t->sport = bpf_ntohs(ic->id);
		else if (ic->type == WEIR_ICMP_ECHOREPLY || ic->type == ICMPV6_ECHO_REPLY)
			t->dport = bpf_ntohs(ic->id);
	}
	return 0;
}

/*
 * The header an ICMP error quotes, up to `end`. A quoted non-first fragment
 * has no ports (they are in its first fragment): they stay 0.
 */
static __always_inline int weir_parse_inner(struct __sk_buff *skb, void *p, void *data_end, void *end,
					    __u8 family, struct weir_tuple *t)
{
	t->family = family;
	if (family == WEIR_FAMILY_IPV4) {
		struct iphdr *ip = p;
		if (!WEIR_FITS(ip, sizeof(*ip), data_end, end))
			return WEIR_DROP_TRUNCATED;
		if (ip->version != 4 || ip->ihl < 5)
			return WEIR_DROP_MALFORMED;
		__builtin_memcpy(t->saddr, &ip->saddr, 4);
		__builtin_memcpy(t->daddr, &ip->daddr, 4);
		t->proto = ip->protocol;
		if (bpf_ntohs(ip->frag_off) & WEIR_IP_OFFSET)
			return 0;
		return weir_parse_inner_l4(p + ip->ihl * 4, data_end, end, t);
	}
	struct ipv6hdr *ip6 = p;
	struct weir_ipv6_walk w = {};
	int reason;
	if (!WEIR_FITS(ip6, sizeof(*ip6), data_end, end))
		return WEIR_DROP_TRUNCATED;
	if (ip6->version != 6)
		return WEIR_DROP_MALFORMED;
	__builtin_memcpy(t->saddr, &ip6->saddr, 16);
	__builtin_memcpy(t->daddr, &ip6->daddr, 16);
	w.nh = ip6->nexthdr;
	reason = weir_ipv6_walk(skb, ip6 + 1, end, &w);
	if (reason)
		return reason;
	t->proto = w.nh;
	if (w.frag == WEIR_FRAG_LATER)
		return 0;
	if (w.ext > WEIR_IPV6_EXT_BYTES)
		return WEIR_DROP_MALFORMED;
	return weir_parse_inner_l4((void *)(ip6 + 1) + w.ext, data_end, end, t);
}

/* L4 of the outer packet (first fragment or unfragmented), inside `end`. */
static __always_inline int weir_parse_l4(struct __sk_buff *skb, void *l4, void *data_end, void *end,
					 struct weir_pkt *pkt)
{
	__u8 proto = pkt->t.proto;

	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;
		if (!WEIR_FITS(th, sizeof(*th), data_end, end))
			return WEIR_DROP_TRUNCATED;
		if (th->doff < 5)
			return WEIR_DROP_MALFORMED;
		if (!WEIR_FITS(l4, th->doff * 4, data_end, end))
			return WEIR_DROP_TRUNCATED;
		pkt->t.sport = bpf_ntohs(th->source);
		pkt->t.dport = bpf_ntohs(th->dest);
		pkt->tcp_flags = ((__u8 *)th)[13];
		pkt->has_ports = 1;
		pkt->l4_off = l4 - (void *)(long)skb->data;
		return 0;
	}
	if (proto == IPPROTO_UDP || proto == IPPROTO_SCTP) {
		/* UDP header is 8 bytes, SCTP common header 12 */
		if (proto == IPPROTO_UDP) {
			if (!WEIR_FITS(l4, sizeof(struct udphdr), data_end, end))
				return WEIR_DROP_TRUNCATED;
		} else {
			if (!WEIR_FITS(l4, sizeof(struct sctphdr_min), data_end, end))
				return WEIR_DROP_TRUNCATED;
		}
		struct weir_ports *p = l4;
		if ((void *)(p + 1) > data_end)
			return WEIR_DROP_TRUNCATED;
		pkt->t.sport = bpf_ntohs(p->source);
		pkt->t.dport = bpf_ntohs(p->dest);
		pkt->has_ports = 1;
		pkt->l4_off = l4 - (void *)(long)skb->data;
		return 0;
	}
	if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
		struct weir_icmp_min *ic = l4;
		if (!WEIR_FITS(ic, sizeof(*ic), data_end, end))
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
				return weir_parse_inner(skb, ic + 1, data_end, end, WEIR_FAMILY_IPV4,
							&pkt->inner);
			}
			return 0;
		}
		if (ic->type == ICMPV6_ECHO_REQUEST) {
			pkt->t.sport = bpf_ntohs(ic->id);
		} else if (ic->type == ICMPV6_ECHO_REPLY) {
			pkt->t.dport = bpf_ntohs(ic->id);
		} else if (weir_is_icmp6_error(ic->type)) {
			pkt->kind = WEIR_PKT_ICMP_ERROR;
			return weir_parse_inner(skb, ic + 1, data_end, end, WEIR_FAMILY_IPV6, &pkt->inner);
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
	void *end;

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
	/* the L4 header must lie inside the IP packet's own length, not in trailing padding */
	end = tot > 0xffff ? data_end : (void *)ip + tot;
	return weir_parse_l4(skb, (void *)ip + hlen, data_end, end, pkt);
}

static __always_inline int weir_parse_ipv6(struct __sk_buff *skb, void *data, void *data_end,
					   struct weir_pkt *pkt)
{
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
	struct weir_ipv6_walk w = {};
	__u32 plen;
	void *end;
	int reason;

	if ((void *)(ip6 + 1) > data_end)
		return WEIR_DROP_TRUNCATED;
	pkt->t.family = WEIR_FAMILY_IPV6;
	__builtin_memcpy(pkt->t.saddr, &ip6->saddr, 16);
	__builtin_memcpy(pkt->t.daddr, &ip6->daddr, 16);
	if (ip6->version != 6)
		return WEIR_DROP_MALFORMED;
	plen = bpf_ntohs(ip6->payload_len);
	if (sizeof(struct ethhdr) + sizeof(struct ipv6hdr) + plen > skb->len)
		return WEIR_DROP_TRUNCATED;
	/* BIG TCP: a GSO packet over 64 KiB has payload length 0 (and a jumbo option) */
	end = plen == 0 && skb->gso_size ? data_end : (void *)(ip6 + 1) + plen;
	w.nh = ip6->nexthdr;
	reason = weir_ipv6_walk(skb, ip6 + 1, end, &w);
	pkt->t.proto = w.nh;
	pkt->frag = w.frag;
	pkt->frag_id = w.frag_id;
	if (reason || w.frag == WEIR_FRAG_LATER)
		return reason;
	if (w.ext > WEIR_IPV6_EXT_BYTES)
		return WEIR_DROP_MALFORMED; /* never: the walk stops there (bounds the offset for the verifier) */
	return weir_parse_l4(skb, (void *)(ip6 + 1) + w.ext, data_end, end, pkt);
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
