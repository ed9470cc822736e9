// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Benchmark build of the datapath that never inserts conntrack entries, so a
 * new connection's verdict (lookups, policy, flow event) can be repeated in
 * place by BPF_PROG_TEST_RUN. Used only by test/bench/datapath.ts; never loaded
 * by the agent.
 */
#define WEIR_BENCH_NO_CT_INSERT
#include "weir.c"
