# The weir node agent image: Node 20 on Debian bookworm, the system libbpf, the compiled TypeScript
# and the BPF objects. `make image` (scripts/image.sh) builds it with podman and no image registry:
# the base is Debian bookworm made by mmdebstrap, Node 20 and npm come from their npm packages
# (build/image/node.tgz and npm.tgz), apt uses Debian's packages, npm the npm registry.
# The Helm chart runs it as `weir agent --config=/etc/weir/config.yaml --node-name=$(NODE_NAME)`.
ARG BASE=localhost/debian-base:bookworm

# ---- build: BPF objects, the native addon, the TypeScript, all from source -----------------
FROM ${BASE} AS build
ARG NPM_REGISTRY=
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      clang llvm libbpf-dev libc6-dev make g++ python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY build/image/node.tgz build/image/npm.tgz /tmp/
RUN mkdir -p /opt/node /opt/npm \
 && tar -xzf /tmp/node.tgz -C /opt/node --strip-components=1 \
 && tar -xzf /tmp/npm.tgz -C /opt/npm --strip-components=1 \
 && ln -s /opt/node/bin/node /usr/local/bin/node \
 && printf '#!/bin/sh\nexec node /opt/npm/bin/npm-cli.js "$@"\n' >/usr/local/bin/npm \
 && printf '#!/bin/sh\nexec node /opt/npm/bin/npx-cli.js "$@"\n' >/usr/local/bin/npx \
 && chmod +x /usr/local/bin/npm /usr/local/bin/npx && rm /tmp/node.tgz /tmp/npm.tgz
# node-gyp builds the addon against the headers the node package ships.
ENV npm_config_nodedir=/opt/node npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
WORKDIR /src
COPY package.json package-lock.json ./
COPY maps/addon/package.json maps/addon/binding.gyp maps/addon/index.cjs maps/addon/v8heap.cjs maps/addon/offloop.cjs maps/addon/
COPY maps/addon/src maps/addon/src
# The registry and the certificate authorities npm trusts are the building host's (a secret, so
# they stay out of the image).
RUN --mount=type=secret,id=npm-ca \
    if [ -n "$NPM_REGISTRY" ]; then npm config set registry "$NPM_REGISTRY"; fi \
 && NODE_EXTRA_CA_CERTS=/run/secrets/npm-ca npm ci --loglevel=error \
 && npm config delete registry
COPY tsconfig.json Makefile ./
COPY bin bin
COPY scripts/bundle-cli.mjs scripts/
COPY bpf bpf
COPY agent agent
COPY maps maps
COPY test test
# node_modules is fresh from `npm ci` above: `make bpf ts` compiles without installing anything.
RUN touch node_modules/.package-lock.json \
 && make bpf ts \
 && npm prune --omit=dev --loglevel=error \
 && rm -rf maps/addon/build/Release/obj.target maps/addon/build/Release/.deps \
 && find node_modules -type f \( -name '*.map' -o -name '*.ts' -o -name '*.md' \) -delete \
 && find node_modules/koffi/build/koffi -mindepth 1 -maxdepth 1 ! -name linux_x64 -exec rm -rf {} + \
 && rm -rf dist/test

# ---- runtime: libbpf1, iproute2 and node, nothing else -------------------------------------
FROM ${BASE}
# libbpf1: libbpf.so.1, called through koffi. iproute2: `ip`/`tc` to inspect what is attached.
# util-linux and mount (in the base) give the init container `mountpoint` and `mount`.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libbpf1 iproute2 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log
COPY --from=build /opt/node/bin/node /usr/local/bin/node
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/maps/addon maps/addon
COPY --from=build /src/dist dist
# The flow API's protobuf definition and its precompiled JSON, read at run time (agent/flows/proto.ts).
COPY --from=build /src/agent/flows/observer.proto /src/agent/flows/observer.json agent/flows/
COPY --from=build /src/build/bpf build/bpf
COPY --from=build /src/bin bin
RUN ln -s /app/bin/weir /usr/local/bin/weir
# Runs as root inside the pod: loading BPF and attaching to tc needs the capabilities the chart
# grants (BPF, NET_ADMIN, SYS_ADMIN, PERFMON), which only apply to uid 0 without ambient caps.
ENTRYPOINT ["weir"]
CMD ["agent", "--help"]
