/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-CPU packet and byte counters by direction, verdict and reason. */
#ifndef WEIR_LIB_COUNTERS_H
#define WEIR_LIB_COUNTERS_H

#include "maps.h"

static __always_inline void weir_count(__u8 dir, __u8 verdict, __u8 reason, __u32 len)
{
	__u32 idx = WEIR_COUNTER_INDEX(dir, verdict, reason & (WEIR_DROP_MAX - 1));
	struct weir_counter *c = bpf_map_lookup_elem(&weir_counters, &idx);
	if (c) {
		c->packets++;
		c->bytes += len;
	}
}

/*
 * What an LRU eviction looks like from the datapath (BPF cannot see the
 * eviction itself): a TCP packet without SYN, of a known endpoint, that finds
 * no conntrack entry for its connection in either direction. Also counted:
 * connections older than the datapath, and stray or crafted segments.
 * Counted before the policy decides, whatever it decides.
 */
static __always_inline void weir_count_ct_miss(__u8 dir)
{
	__u32 idx = dir;
	__u64 *n = bpf_map_lookup_elem(&weir_ct_miss, &idx);
	if (n)
		(*n)++;
}

#endif
