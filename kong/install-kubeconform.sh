#!/usr/bin/env bash
# Builds kubeconform (a Kubernetes manifest validator, a Go program, Apache-2.0) from its Go module
# through the Go module proxy, the way kong/install-compose.sh builds Compose, and caches it by
# version. Prints the path of the binary. Used by test/integration/examples-tools.test.ts to check
# examples/kubernetes/*.yaml against Kong's KongPlugin/KongClusterPlugin CRD schemas
# (test/fixtures/crd-schemas/). It needs no cluster.
#
#   KUBECONFORM_VERSION  release to build (default v0.8.0)
#   KUBECONFORM_CACHE    cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/kong-immudb-audit/kubeconform)
set -euo pipefail

version="${KUBECONFORM_VERSION:-v0.8.0}"
cache_root="${KUBECONFORM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kong-immudb-audit/kubeconform}"
bin="$cache_root/$version/kubeconform"

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null 2>&1 || { echo "install-kubeconform: Go is required to build kubeconform $version (https://go.dev/dl/)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "install-kubeconform: building kubeconform $version from the Go module proxy" >&2
GOBIN="$work" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "github.com/yannh/kubeconform/cmd/kubeconform@$version" >&2
mkdir -p "$(dirname "$bin")"
mv "$work/kubeconform" "$bin.tmp"
mv "$bin.tmp" "$bin"
"$bin" -v >&2
echo "$bin"
