#!/usr/bin/env bash
# Runs the whole test suite (unit + integration against a real immudb and the real plugin
# server) on Node 24, installing what is missing first. Extra arguments go to ava, e.g.
#   bash scripts/test.sh dist/test/unit        # unit tests only
# Ends with a line "N passed, N failed".
source "$(dirname "$0")/env.sh"
# `docker compose config` validates docker-compose.yml in the deployment test; Compose is built
# from its Go module when the machine has none (cached, like immudb).
bash kong/install-compose.sh >/dev/null
# kubeconform checks examples/kubernetes against Kong's CRD schemas (test/integration/examples-tools.test.ts).
bash kong/install-kubeconform.sh >/dev/null
npm run --silent build
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(dist/test)
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
npx ava --tap "${targets[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -cE '^ok [0-9]+' "$log" || true)
failed=$(grep -cE '^not ok [0-9]+' "$log" || true)
echo
echo "$passed passed, $failed failed"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  echo "ava exited with status $status (see above)" >&2
fi
exit "$status"
