# Shared by the scripts that build a Go program from its module through the Go module proxy and
# cache it by version (kong/install-kubeconform.sh, kong/install-compose.sh,
# scripts/install-immudb.sh). Source it, then:
#
#   go_tool_cached NAME WHAT OUT LOCK BIN...      (GO_TOOL_NOTE: appended to the "building" line)
#       Prints OUT and exits 0 when every BIN is executable. Otherwise requires Go, takes LOCK
#       (so that concurrent runs build once: the second prints what the first built), makes
#       GO_WORK, a temporary directory removed on exit, and says on stderr that it builds WHAT.
#   go_tool_install PACKAGE@VERSION DEST [go install flags...]
#       go install (static, -trimpath) into GO_WORK, then moves the binary to DEST atomically.
#   go_tool_build PACKAGE DEST
#       go build (static, -trimpath, -mod=mod) in the current module, to DEST atomically.
#
# Every binary is written as DEST.tmp and renamed, so a reader never runs half a file.

go_tool_cached() {
  local name="$1" what="$2" out="$3" lock="$4"
  shift 4
  GO_TOOL_NAME="$name"
  _go_tool_have "$@" && { echo "$out"; exit 0; }
  command -v go >/dev/null 2>&1 || { echo "$name: Go is required to build $what (https://go.dev/dl/)" >&2; exit 1; }
  mkdir -p "$(dirname "$lock")"
  if command -v flock >/dev/null 2>&1; then
    exec {GO_TOOL_LOCK_FD}>"$lock"
    flock "$GO_TOOL_LOCK_FD"
    _go_tool_have "$@" && { echo "$out"; exit 0; }
  fi
  GO_WORK="$(mktemp -d)"
  trap 'rm -rf "$GO_WORK"' EXIT
  echo "$name: building $what from the Go module proxy${GO_TOOL_NOTE:-}" >&2
}

_go_tool_have() {
  local b
  for b in "$@"; do [ -x "$b" ] || return 1; done
}

go_tool_install() {
  local pkg="$1" dest="$2"
  shift 2
  local path="${pkg%@*}"
  GOBIN="$GO_WORK" CGO_ENABLED=0 go install -trimpath "$@" "$pkg" >&2
  _go_tool_place "$GO_WORK/${path##*/}" "$dest"
}

go_tool_build() {
  local pkg="$1" dest="$2"
  mkdir -p "$(dirname "$dest")"
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$dest.tmp" "$pkg" >&2
  mv "$dest.tmp" "$dest"
}

_go_tool_place() {
  mkdir -p "$(dirname "$2")"
  mv "$1" "$2.tmp"
  mv "$2.tmp" "$2"
}
