# Sourced by the project's scripts: puts Node 24 first on PATH and installs npm dependencies
# when package-lock.json changed since the last install. Quiet unless something happens.
set -euo pipefail
KIA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
node_bin="$("$KIA_ROOT/scripts/node24.sh")"
export PATH="$node_bin:$PATH"
cd "$KIA_ROOT"
stamp="node_modules/.kia-lock-$(node -p "require('crypto').createHash('sha256').update(require('fs').readFileSync('package-lock.json')).digest('hex').slice(0,16)")-$(node -p process.versions.node)"
if [ ! -e "$stamp" ]; then
  echo "env: installing npm dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
  touch "$stamp"
fi
IMMUDB_BIN_DIR="$("$KIA_ROOT/scripts/install-immudb.sh")"
export IMMUDB_BIN_DIR
