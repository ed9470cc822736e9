// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The packet parser alone, for the differential test against an independent
 * dissector (test/kernel/parser-diff.test.ts): `parse` runs weir_parse() on
 * the packet and writes what it found to `parse_result[0]`. Never loaded by
 * the agent; its map is never pinned.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "weir_abi.h"
#include "lib/parse.h"

struct weir_parse_tuple {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family;
	__u16 _pad;
};

/* Layout read by test/kernel/parser-diff.test.ts (96 bytes). */
struct weir_parse_result {
	__u32 reason; /* WEIR_DROP_* or 0 */
	__u8 kind;    /* enum weir_pkt_kind */
	__u8 frag;    /* enum weir_frag_kind */
	__u8 tcp_flags;
	__u8 has_ports;
	__u32 frag_id;
	__u16 icmp_type;
	__u16 icmp_code;
	struct weir_parse_tuple t;
	struct weir_parse_tuple inner;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct weir_parse_result);
} parse_result SEC(".maps");

static __always_inline void weir_copy_tuple(struct weir_parse_tuple *d, const struct weir_tuple *s)
{
	__builtin_memcpy(d->saddr, s->saddr, 16);
	__builtin_memcpy(d->daddr, s->daddr, 16);
	d->sport = s->sport;
	d->dport = s->dport;
	d->proto = s->proto;
	d->family = s->family;
	d->_pad = 0;
}

SEC("tc")
int parse(struct __sk_buff *skb)
{
	struct weir_pkt pkt = {};
	__u32 zero = 0;
	struct weir_parse_result *r = bpf_map_lookup_elem(&parse_result, &zero);
	int reason = weir_parse(skb, &pkt);

	if (!r)
		return TC_ACT_SHOT;
	r->reason = reason;
	r->kind = pkt.kind;
	r->frag = pkt.frag;
	r->tcp_flags = pkt.tcp_flags;
	r->has_ports = pkt.has_ports;
	r->frag_id = pkt.frag_id;
	r->icmp_type = pkt.icmp_type;
	r->icmp_code = pkt.icmp_code;
	weir_copy_tuple(&r->t, &pkt.t);
	weir_copy_tuple(&r->inner, &pkt.inner);
	return reason ? TC_ACT_SHOT : TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
