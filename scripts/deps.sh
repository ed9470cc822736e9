#!/usr/bin/env bash
# Installs what weir needs and is missing, by looking for the tools and headers themselves
# (never for a stamp file): each line below is "how to tell it is there" and "the Debian package
# that brings it". With --check it only reports what is missing and exits non-zero.
set -euo pipefail

need() { # need PACKAGE TEST...
  local pkg=$1; shift
  "$@" >/dev/null 2>&1 || missing+=("$pkg")
}
has() { command -v "$1"; }
file() { test -e "$1"; }
py() { /usr/bin/python3 -c "import $1"; }

missing=()
arch_inc=/usr/include/$(uname -m)-linux-gnu
need clang has clang
need llvm has llvm-strip
need libbpf-dev file /usr/include/bpf/libbpf.h
need libbpf-dev file "/usr/lib/$(uname -m)-linux-gnu/libbpf.so"
need bpftool has bpftool
need iproute2 has ip
need iptables has iptables
need nftables has nft
need ipset has ipset
need iperf3 has iperf3
need make has make
need unzip has unzip
need g++ has g++
need libc6-dev file "$arch_inc/asm/types.h"
need python3 file /usr/bin/python3
need python3-prometheus-client py prometheus_client
need prometheus has promtool
need python3-scapy py scapy
need clang-format has clang-format
need prometheus has prometheus
need mmdebstrap has mmdebstrap
need podman has podman
need buildah has buildah
need runc has runc

if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "${1:-}" = --check ]; then
  echo "missing: ${missing[*]} (run 'make deps' as root to install them)" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "weir needs these Debian packages: ${missing[*]}; run 'make deps' as root, or install them." >&2
  exit 1
fi
echo ">> apt-get install ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
