// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * What single datapath operations cost on this machine, for `make bench`
 * (test/bench/datapath.ts): each program does one operation WEIR_BENCH_OPS
 * times, so (its ns - the empty program's ns) / WEIR_BENCH_OPS is the cost of
 * one. The maps are this object's own (never pinned); the bench fills the
 * hash maps' all-zero keys so the lookups hit. Never loaded by the agent.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "weir_abi.h"

#define WEIR_BENCH_OPS 4

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_ENDPOINTS_MAX);
	__type(key, __u32);
	__type(value, struct weir_endpoint);
} ops_hash4 SEC(".maps");

/* as weir_ct4: per-CPU LRU lists */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEIR_CT_MAX);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct weir_ct4_key);
	__type(value, struct weir_ct_value);
} ops_ct4 SEC(".maps");

/* the same table with the LRU lists shared by all CPUs (no BPF_F_NO_COMMON_LRU) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEIR_CT_MAX);
	__type(key, struct weir_ct4_key);
	__type(value, struct weir_ct_value);
} ops_ct4_common SEC(".maps");

/* the same table as a plain (preallocated, non-LRU) hash: what an insert costs without LRU lists */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_CT_MAX);
	__type(key, struct weir_ct4_key);
	__type(value, struct weir_ct_value);
} ops_ct4_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEIR_CT_MAX);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct weir_ct_key);
	__type(value, struct weir_ct_value);
} ops_ct SEC(".maps");

/*
 * Tables that new connections fill: each insert takes a key never used before,
 * so once a table is full (after WEIR_CT_MAX inserts) every insert evicts the
 * least recently used entry, as on a busy node. One per LRU flavour.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEIR_CT_MAX);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct weir_ct4_key);
	__type(value, struct weir_ct_value);
} ops_ct4_fill SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEIR_CT_MAX);
	__type(key, struct weir_ct4_key);
	__type(value, struct weir_ct_value);
} ops_ct4_fill_common SEC(".maps");

/* the next new key of each CPU */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} ops_seq SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WEIR_COUNTER_ENTRIES);
	__type(key, __u32);
	__type(value, struct weir_counter);
} ops_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, WEIR_EVENTS_RING_BYTES);
} ops_events SEC(".maps");

/* Runs `body` WEIR_BENCH_OPS times; `sink` keeps the results alive. */
#define WEIR_REPEAT(body)                                                                                    \
	({                                                                                                   \
		__u64 sink = 0;                                                                              \
		_Pragma("unroll") for (int i = 0; i < WEIR_BENCH_OPS; i++)                                   \
		{                                                                                            \
			body;                                                                                \
		}                                                                                            \
		(int)(sink & 1);                                                                             \
	})

SEC("tc")
int op_ktime(struct __sk_buff *skb)
{
	return WEIR_REPEAT(sink += bpf_ktime_get_ns());
}

SEC("tc")
int op_ktime_coarse(struct __sk_buff *skb)
{
	return WEIR_REPEAT(sink += bpf_ktime_get_coarse_ns());
}

SEC("tc")
int op_jiffies(struct __sk_buff *skb)
{
	return WEIR_REPEAT(sink += bpf_jiffies64());
}

SEC("tc")
int op_hash4_hit(struct __sk_buff *skb)
{
	__u32 key = 0;
	return WEIR_REPEAT(if (bpf_map_lookup_elem(&ops_hash4, &key)) sink++);
}

SEC("tc")
int op_ct4_hit(struct __sk_buff *skb)
{
	struct weir_ct4_key key = {};
	return WEIR_REPEAT(if (bpf_map_lookup_elem(&ops_ct4, &key)) sink++);
}

/* Replaces the entry of the all-zero key: an insert's work on a warm map (a free node taken, the old one freed). */
SEC("tc")
int op_ct4_update(struct __sk_buff *skb)
{
	struct weir_ct4_key key = {};
	struct weir_ct_value v = {};
	return WEIR_REPEAT(sink += bpf_map_update_elem(&ops_ct4, &key, &v, BPF_ANY));
}

SEC("tc")
int op_ct4_common_update(struct __sk_buff *skb)
{
	struct weir_ct4_key key = {};
	struct weir_ct_value v = {};
	return WEIR_REPEAT(sink += bpf_map_update_elem(&ops_ct4_common, &key, &v, BPF_ANY));
}

/* Inserts of new connections (a key never used before) into a table they keep full. */
#define WEIR_INSERT_NEW(map)                                                                                 \
	({                                                                                                   \
		__u32 zero = 0;                                                                              \
		__u32 *seq = bpf_map_lookup_elem(&ops_seq, &zero);                                           \
		struct weir_ct4_key key = {.protocol = 6};                                                   \
		struct weir_ct_value v = {};                                                                 \
		if (!seq)                                                                                    \
			return 0;                                                                            \
		__u32 cpu = bpf_get_smp_processor_id();                                                      \
		__builtin_memcpy(key.dst_addr, &cpu, 4);                                                     \
		WEIR_REPEAT({                                                                                \
			__u32 n = (*seq)++;                                                                  \
			__builtin_memcpy(key.src_addr, &n, 4);                                               \
			sink += bpf_map_update_elem(&map, &key, &v, BPF_NOEXIST);                            \
		});                                                                                          \
	})

SEC("tc")
int op_ct4_insert_new(struct __sk_buff *skb)
{
	return WEIR_INSERT_NEW(ops_ct4_fill);
}

SEC("tc")
int op_ct4_common_insert_new(struct __sk_buff *skb)
{
	return WEIR_INSERT_NEW(ops_ct4_fill_common);
}

SEC("tc")
int op_ct4_hash_update(struct __sk_buff *skb)
{
	struct weir_ct4_key key = {};
	struct weir_ct_value v = {};
	return WEIR_REPEAT(sink += bpf_map_update_elem(&ops_ct4_hash, &key, &v, BPF_ANY));
}

SEC("tc")
int op_ct_hit(struct __sk_buff *skb)
{
	struct weir_ct_key key = {};
	return WEIR_REPEAT(if (bpf_map_lookup_elem(&ops_ct, &key)) sink++);
}

SEC("tc")
int op_percpu_counter(struct __sk_buff *skb)
{
	__u32 key = 0;
	return WEIR_REPEAT({
		struct weir_counter *c = bpf_map_lookup_elem(&ops_counters, &key);
		if (c)
			c->packets++;
	});
}

SEC("tc")
int op_ringbuf_reserve_discard(struct __sk_buff *skb)
{
	return WEIR_REPEAT({
		struct weir_flow_event *e = bpf_ringbuf_reserve(&ops_events, sizeof(*e), 0);
		if (e) {
			e->ts_jiffies = 0;
			bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
		}
	});
}

SEC("tc")
int op_ringbuf_query(struct __sk_buff *skb)
{
	return WEIR_REPEAT(sink += bpf_ringbuf_query(&ops_events, BPF_RB_AVAIL_DATA));
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
