#!/usr/bin/env bash
# Builds the real immudb server, immuadmin and immuclient from immudb's Go module (through the Go
# module proxy) and caches the binaries by version. Prints the directory holding them.
#
#   IMMUDB_VERSION   release tag to build (default v1.11.1)
#   IMMUDB_CACHE     cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/kong-immudb-audit/immudb)
#
# A plain `go install module/cmd@version` refuses modules that carry `replace` directives, so we
# build from a throwaway module that requires the release and repeats immudb's replaces.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-install.sh"

version="${IMMUDB_VERSION:-v1.11.1}"
cache_root="${IMMUDB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kong-immudb-audit/immudb}"
bin_dir="$cache_root/$version/bin"

GO_TOOL_NOTE=" (a cold build takes a few minutes)" \
  go_tool_cached install-immudb "immudb $version" "$bin_dir" "$cache_root/$version.lock" "$bin_dir/immudb" "$bin_dir/immuadmin" "$bin_dir/immuclient"

cd "$GO_WORK"
cat > go.mod <<GOMOD
module immudb-build

go 1.25.0

require github.com/codenotary/immudb $version

replace github.com/takama/daemon v0.12.0 => github.com/codenotary/daemon v0.0.0-20200507161650-3d4bcb5230f4

replace github.com/spf13/afero => github.com/spf13/afero v1.5.1
GOMOD
cat > tools.go <<'GOSRC'
//go:build tools

package tools

import (
	_ "github.com/codenotary/immudb/cmd/immuadmin"
	_ "github.com/codenotary/immudb/cmd/immuclient"
	_ "github.com/codenotary/immudb/cmd/immudb"
)
GOSRC

GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
GOFLAGS=-mod=mod go get "github.com/codenotary/immudb@$version" >&2
for b in immudb immuadmin immuclient; do
  go_tool_build "github.com/codenotary/immudb/cmd/$b" "$bin_dir/$b"
done
"$bin_dir/immudb" version >&2 || true
echo "$bin_dir"
