#!/usr/bin/env bash
# Ensures a Node.js 24 binary (the version the project tests on) and prints the directory that
# holds it, so callers can do: PATH="$(scripts/node24.sh):$PATH".
#
# Node 24 comes from the npm registry (the official binaries are published there as
# node-<platform>-<arch>), so a machine that only has an older Node and npm can bootstrap it.
# If the Node already on PATH is 24 (or 22 with KIA_ALLOW_NODE22=1) it is used as is.
#   NODE_VERSION        exact version to install (default 24.21.0)
#   KIA_NODE_CACHE      cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/kong-immudb-audit/node)
#   KIA_FORCE_NODE24=1  install Node 24 even if a supported Node is on PATH
set -euo pipefail

version="${NODE_VERSION:-24.21.0}"
cache_root="${KIA_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kong-immudb-audit/node}"

if [ "${KIA_FORCE_NODE24:-0}" != 1 ] && command -v node >/dev/null 2>&1; then
  major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
  if [ "$major" = 24 ] || { [ "$major" = 22 ] && [ "${KIA_ALLOW_NODE22:-0}" = 1 ]; }; then
    dirname "$(command -v node)"
    exit 0
  fi
fi

command -v npm >/dev/null 2>&1 || { echo "node24: npm is needed to fetch Node $version from the npm registry" >&2; exit 1; }

case "$(uname -s)" in
  Linux) platform=linux ;;
  Darwin) platform=darwin ;;
  *) echo "node24: unsupported OS $(uname -s); install Node 22 or 24 yourself" >&2; exit 1 ;;
esac
case "$(uname -m)" in
  x86_64|amd64) arch=x64 ;;
  aarch64|arm64) arch=arm64 ;;
  *) echo "node24: unsupported CPU $(uname -m); install Node 22 or 24 yourself" >&2; exit 1 ;;
esac

pkg="node-$platform-$arch"
dir="$cache_root/$version"
bin="$dir/node_modules/$pkg/bin"
if [ ! -x "$bin/node" ]; then
  echo "node24: installing Node $version ($pkg) from the npm registry into $dir" >&2
  mkdir -p "$dir"
  npm install --silent --no-audit --no-fund --no-save --prefix "$dir" "$pkg@$version" >&2
fi
"$bin/node" --version >/dev/null
echo "$bin"
