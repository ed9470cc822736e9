#!/usr/bin/env bash
# `make demo`: a three-tier app in a local lab, before and after its NetworkPolicies, enforced
# by weir's eBPF datapath; the flows it dropped, an agent restart, the verdict counters; then teardown.
# Needs root (network namespaces, BPF). `make demo` builds first.
set -euo pipefail
cd "$(dirname "$0")/.."

weir() { node dist/agent/cli/main.js "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "make demo creates network namespaces and loads BPF programs: run it as root (sudo make demo)" >&2
  exit 1
fi

weir lab down >/dev/null 2>&1 || true
trap 'step "Tearing the lab down"; weir lab down' EXIT

step "A three-tier shop (frontend -> backend -> db) and a client outside it, each pod in its own network namespace"
weir lab up --cluster examples/three-tier/cluster.yaml
weir lab get pods

step "Before any policy: every pod reaches every tier on its port (probe by the port name 'serve')"
weir lab probe --port serve

step "Apply the policies: default-deny in shop, then each tier opens its port to the tier in front of it"
weir lab apply -f examples/three-tier/policies.yaml
weir lab get policies

step "After: the client reaches only the frontend, the frontend only the backend, the backend only the db"
weir lab probe --port serve

step "Why is outside/client -> shop/db denied? (weir policy explain, offline from the same YAML)"
weir policy explain --from outside/client --to shop/db --port 5432 -f examples/three-tier || true

step "Flows the datapath dropped (weir observe)"
weir observe --verdict DROPPED --last 6 --color never || echo "(no flow API: see ${WEIR_LAB_RUN_DIR:-/run/weir/lab}/agent.log)"

step "Restart safety: kill the lab agent; a new one adopts the pinned programs and maps"
weir lab restart-agent
weir lab probe --port serve

step "Verdict counters on /metrics (series still at 0 left out)"
metrics_url=$(weir lab status | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).metricsUrl??""))')
if [ -n "$metrics_url" ]; then
  echo "$metrics_url"
  node -e 'fetch(process.argv[1]).then(r=>r.text()).then(t=>console.log(t.split("\n").filter(l=>/^weir_(policy_verdicts|drops)_total/.test(l)&&!/ 0$/.test(l)).join("\n")))' "$metrics_url"
fi
