// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The verdict build (weir_bench_verdict.c) whose from_pod looks conntrack up
 * again after the Services step for every new connection, as it did before
 * the fast path's misses were handed on: the side-by-side reference of
 * `make bench` for a pod's own new connection. Never loaded by the agent.
 */
#define WEIR_BENCH_NO_CT_INSERT
#define WEIR_BENCH_EGRESS_LOOK_AGAIN
#include "weir.c"
