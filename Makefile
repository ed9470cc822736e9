# weir — build, test, bench, demo. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

ARCH_INCLUDE := /usr/include/$(shell uname -m)-linux-gnu
CLANG ?= clang
BPF_CFLAGS := -O2 -g -Wall -Werror -target bpf -I$(ARCH_INCLUDE) -Ibpf
BPF_SRC := $(wildcard bpf/*.c)
BPF_OBJ := $(patsubst bpf/%.c,build/bpf/%.o,$(BPF_SRC))
BPF_HDR := $(wildcard bpf/*.h bpf/lib/*.h)
TS_SRC := $(shell find agent maps test -name '*.ts' -not -path '*/node_modules/*' 2>/dev/null)
APT_PACKAGES := clang llvm libbpf-dev bpftool iproute2 iptables nftables iperf3 sockperf make g++ python3 python3-prometheus-client \
	golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev \
	golang-github-xeipuuv-gojsonschema-dev

.PHONY: help deps build bpf ts addon test test-unit bench demo clean

help:
	@echo "make demo   - install what is missing, build, and show weir enforcing policies in a local lab"
	@echo "make test   - install, build and run every test (kernel tests need root)"
	@echo "make bench  - datapath and control-plane benchmarks, written to docs/benchmarks.md"
	@echo "make deps   - apt and npm dependencies (idempotent)"
	@echo "make build  - BPF objects, the ring-buffer addon and the TypeScript"

deps: .deps-apt node_modules/.package-lock.json bpffs

.deps-apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo ">> apt-get install$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	fi
	@touch $@

node_modules/.package-lock.json: package.json package-lock.json maps/addon/binding.gyp maps/addon/src/ringbuf.c | .deps-apt
	@echo ">> npm ci"
	@npm ci --no-audit --no-fund --loglevel=error

.PHONY: bpffs
bpffs:
	@mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || echo "note: could not mount bpffs on /sys/fs/bpf (run as root)"

build: deps bpf ts

bpf: $(BPF_OBJ)

build/bpf/%.o: bpf/%.c $(BPF_HDR)
	@mkdir -p $(dir $@)
	@echo ">> clang $<"
	@$(CLANG) $(BPF_CFLAGS) -c $< -o $@

ts: dist/.stamp

dist/.stamp: $(TS_SRC) tsconfig.json node_modules/.package-lock.json
	@echo ">> tsc"
	@npx tsc -p tsconfig.json
	@touch $@

test: build
	@node test/run-tests.mjs

test-unit: build
	@node test/run-tests.mjs test/unit

bench: build
	@node dist/test/bench/run.js

demo: build
	@bash examples/demo.sh

clean:
	rm -rf build dist .deps-apt
