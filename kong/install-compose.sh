#!/usr/bin/env bash
# Builds Docker Compose (the `docker compose` CLI plugin, a Go program) from its Go module through
# the Go module proxy, the same way scripts/install-immudb.sh builds immudb, and caches it by
# version. Prints the directory that holds cli-plugins/docker-compose. Used by
# test/integration/deployment.test.ts to run `docker compose config` on machines without Compose
# (it needs no Docker engine). Debian 12 only packages the old Python docker-compose 1.29.
#
#   COMPOSE_VERSION  release to build (default v5.0.2: its go.mod needs Go 1.24.3, so any Go that
#                    builds immudb builds it; newer releases need Go 1.26.8)
#   COMPOSE_CACHE    cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/kong-immudb-audit/compose)
#
# Use it as a docker CLI plugin with: DOCKER_CONFIG=<dir> docker compose ... (or run
# <dir>/cli-plugins/docker-compose directly). A cold build takes about 3 minutes on 2 cores.
set -euo pipefail

version="${COMPOSE_VERSION:-v5.0.2}"
cache_root="${COMPOSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kong-immudb-audit/compose}"
dir="$cache_root/$version"
bin="$dir/cli-plugins/docker-compose"

if [ -x "$bin" ]; then
  echo "$dir"
  exit 0
fi

command -v go >/dev/null 2>&1 || { echo "install-compose: Go is required to build Docker Compose $version (https://go.dev/dl/)" >&2; exit 1; }

major="${version%%.*}"   # v5.0.2 -> v5: the module is github.com/docker/compose/v5
module="github.com/docker/compose/$major"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "install-compose: building Docker Compose $version from the Go module proxy (a cold build takes a few minutes)" >&2
GOBIN="$work" CGO_ENABLED=0 \
  go install -trimpath -ldflags "-s -w -X $module/internal.Version=$version" "$module/cmd@$version" >&2
mkdir -p "$dir/cli-plugins"
mv "$work/cmd" "$bin.tmp"
mv "$bin.tmp" "$bin"
"$bin" version >&2
echo "$dir"
