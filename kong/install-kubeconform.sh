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
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/go-install.sh"

version="${KUBECONFORM_VERSION:-v0.8.0}"
cache_root="${KUBECONFORM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kong-immudb-audit/kubeconform}"
bin="$cache_root/$version/kubeconform"

go_tool_cached install-kubeconform "kubeconform $version" "$bin" "$cache_root/$version.lock" "$bin"
go_tool_install "github.com/yannh/kubeconform/cmd/kubeconform@$version" "$bin" -ldflags "-s -w"
"$bin" -v >&2
echo "$bin"
