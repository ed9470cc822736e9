/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Every map of the datapath, pinned by name under the loader's pin root. */
#ifndef WEIR_LIB_MAPS_H
#define WEIR_LIB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "weir_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_ENDPOINTS_MAX);
	__type(key, __u32);
	__type(value, struct weir_endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WEIR_ENDPOINT_IDS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_ep_rev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WEIR_ENDPOINT_IDS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_ct_budget SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_IPCACHE_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct weir_ipcache_key);
	__type(value, struct weir_ipcache_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WEIR_IPCACHE_LPM_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct weir_ipcache_lpm_key);
	__type(value, struct weir_ipcache_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_ipc_lpm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_POLICY_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct weir_policy_key);
	__type(value, struct weir_policy_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WEIR_POLICY_RANGE_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct weir_policy_range_key);
	__type(value, struct weir_policy_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_policy_rng SEC(".maps");

/*
 * Conntrack: per-CPU LRU lists (BPF_F_NO_COMMON_LRU). Entries are never deleted,
 * only evicted, so a node's tables fill up and then every new connection evicts
 * one: that insert costs ~350 ns with per-CPU lists against ~466 ns with lists
 * shared by all CPUs (`make bench`'s operation table), which win only when an
 * entry is replaced in a table with free nodes (~155 against ~215 ns).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEIR_CT_MAX);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct weir_ct_key);
	__type(value, struct weir_ct_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEIR_CT_MAX);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct weir_ct4_key);
	__type(value, struct weir_ct_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_ct4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEIR_FRAG_MAX);
	__type(key, struct weir_frag_key);
	__type(value, struct weir_frag_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_frag SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct weir_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_config SEC(".maps");

/* The config flags in force (WEIR_CFG_DEFAULT_FLAGS until the agent set them). */
static __always_inline __u32 weir_config_flags(void)
{
	__u32 zero = 0;
	struct weir_config *c = bpf_map_lookup_elem(&weir_config, &zero);
	if (!c || !(c->flags & WEIR_CFG_F_SET))
		return WEIR_CFG_DEFAULT_FLAGS;
	return c->flags;
}

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, WEIR_EVENTS_RING_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_ev_lost SEC(".maps");

/*
 * Conntrack misses of established-looking packets, by direction (WEIR_DIR_*):
 * TCP packets without SYN of an endpoint that found no entry in either
 * direction, live or expired. See weir_count_ct_miss.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WEIR_DIR_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_ct_miss SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WEIR_COUNTER_ENTRIES);
	__type(key, __u32);
	__type(value, struct weir_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_counters SEC(".maps");

/* ---- Services (bpf/lib/lb.h) ---- */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_SVC_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct weir_svc_key);
	__type(value, struct weir_svc_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_svc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_SVC_BE_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct weir_svc_be_key);
	__type(value, struct weir_svc_be_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_svc_be SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEIR_LB_CT_MAX);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct weir_lb_key);
	__type(value, struct weir_lb_fwd_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_lb_fwd SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEIR_LB_CT_MAX);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct weir_lb_key);
	__type(value, struct weir_lb_rev_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_lb_rev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEIR_LB_AFF_MAX);
	__type(key, struct weir_lb_aff_key);
	__type(value, struct weir_lb_aff_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_lb_aff SEC(".maps");

/* NodePort masquerade (weir_abi.h, struct weir_nat_value): written only by the datapath */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEIR_NAT_MAX);
	__type(key, struct weir_lb_key);
	__type(value, struct weir_nat_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_nat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WEIR_LB_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_lb_counters SEC(".maps");

#endif
