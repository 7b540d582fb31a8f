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

version="${IMMUDB_VERSION:-v1.11.1}"
cache_root="${IMMUDB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kong-immudb-audit/immudb}"
bin_dir="$cache_root/$version/bin"

have_all() {
  for b in immudb immuadmin immuclient; do [ -x "$bin_dir/$b" ] || return 1; done
}

if have_all; then
  echo "$bin_dir"
  exit 0
fi

command -v go >/dev/null 2>&1 || { echo "install-immudb: Go is required to build immudb $version (https://go.dev/dl/)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$bin_dir"

cd "$work"
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

echo "install-immudb: building immudb $version from the Go module proxy (a cold build takes a few minutes)" >&2
GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
GOFLAGS=-mod=mod go get "github.com/codenotary/immudb@$version" >&2
for b in immudb immuadmin immuclient; do
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$bin_dir/$b.tmp" "github.com/codenotary/immudb/cmd/$b" >&2
  mv "$bin_dir/$b.tmp" "$bin_dir/$b"
done
"$bin_dir/immudb" version >&2 || true
echo "$bin_dir"
