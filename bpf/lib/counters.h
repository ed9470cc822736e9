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

#endif
