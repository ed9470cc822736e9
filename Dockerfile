# The weir node agent image: Node 20 on Debian bookworm slim, the system libbpf, the compiled
# TypeScript and the BPF objects. Build from the repository root:
#   docker build -t weir/agent:0.1.0 .
# The Helm chart runs it as `weir agent --config=/etc/weir/config.yaml --node-name=$(NODE_NAME)`.

# ---- build: BPF objects, the ring-buffer addon, the TypeScript --------------------------------
FROM node:20-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      clang llvm libbpf-dev make g++ python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
COPY maps/addon/package.json maps/addon/binding.gyp maps/addon/index.cjs maps/addon/
COPY maps/addon/src maps/addon/src
RUN npm ci --no-audit --no-fund
COPY tsconfig.json Makefile ./
COPY bpf bpf
COPY agent agent
COPY maps maps
COPY test test
# .deps-apt marks the apt step done (done above); `make bpf ts` compiles without installing.
RUN touch .deps-apt node_modules/.package-lock.json \
 && make bpf ts \
 && npm prune --omit=dev --no-audit --no-fund

# ---- runtime -----------------------------------------------------------------------------
FROM node:20-bookworm-slim
# libbpf1: libbpf.so.1, called through koffi. iproute2: `ip`/`tc` to inspect what is attached.
# util-linux and mount (in the base image) give the init container `mountpoint` and `mount`.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libbpf1 iproute2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/maps/addon maps/addon
COPY --from=build /src/dist dist
COPY --from=build /src/build/bpf build/bpf
COPY bin bin
RUN ln -s /app/bin/weir /usr/local/bin/weir
# Runs as root inside the pod: loading BPF and attaching to tc needs the capabilities the chart
# grants (BPF, NET_ADMIN, SYS_ADMIN, PERFMON), which only apply to uid 0 without ambient caps.
ENTRYPOINT ["weir"]
CMD ["agent", "--help"]
