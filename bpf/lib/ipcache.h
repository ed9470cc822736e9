/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Address -> identity: exact hash first, then the prefix trie, else world (2). The agent
 * always writes 0.0.0.0/0 (world-ipv4) and ::/0 (world-ipv6), so world (2) is only seen
 * before it did; no policy selects it, so such an address is allowed by no ipBlock.
 */
#ifndef WEIR_LIB_IPCACHE_H
#define WEIR_LIB_IPCACHE_H

#include "maps.h"

static __always_inline __u32 weir_ipcache_identity(const __u8 *addr, __u8 family)
{
	struct weir_ipcache_key k = {.family = family};
	struct weir_ipcache_value *v;

	__builtin_memcpy(k.addr, addr, 16);
	v = bpf_map_lookup_elem(&weir_ipcache, &k);
	if (v)
		return v->identity;

	struct weir_ipcache_lpm_key lk = {
		.prefixlen = WEIR_IPCACHE_LPM_PREFIX_BASE + (family == WEIR_FAMILY_IPV4 ? 32 : 128),
		.family = bpf_htonl(family),
	};
	__builtin_memcpy(lk.addr, addr, 16);
	v = bpf_map_lookup_elem(&weir_ipc_lpm, &lk);
	if (v)
		return v->identity;
	return WEIR_ID_WORLD;
}

#endif
