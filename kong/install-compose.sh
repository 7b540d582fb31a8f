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
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/go-install.sh"

version="${COMPOSE_VERSION:-v5.0.2}"
cache_root="${COMPOSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kong-immudb-audit/compose}"
dir="$cache_root/$version"
bin="$dir/cli-plugins/docker-compose"
major="${version%%.*}"   # v5.0.2 -> v5: the module is github.com/docker/compose/v5
module="github.com/docker/compose/$major"

GO_TOOL_NOTE=" (a cold build takes a few minutes)" \
  go_tool_cached install-compose "Docker Compose $version" "$dir" "$cache_root/$version.lock" "$bin"
go_tool_install "$module/cmd@$version" "$bin" -ldflags "-s -w -X $module/internal.Version=$version"
"$bin" version >&2
echo "$dir"
