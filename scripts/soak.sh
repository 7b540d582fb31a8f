#!/usr/bin/env bash
# Soak of the fault-injection rig: model-based schedules and crash rounds with fresh seeds for
# N seconds against a real immudb and the real plugin server, then a report (see docs/testing.md).
#   bash scripts/soak.sh --seconds 300      (or: npm run soak -- --seconds 300)
# Exits non-zero when an acknowledged entry was lost or something unproven was accepted.
source "$(dirname "$0")/env.sh"
npm run --silent build
# The runner has its own hard stop at N + 300 s, but a starved event loop cannot run it (that
# happened: a loop on settled promises); `timeout` ends the process from outside 60 s later.
seconds=60
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [ "${args[$i]}" = --seconds ] && seconds="${args[$((i + 1))]:-60}"
done
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: soak.sh --seconds N (N > 0)" >&2; exit 2; }
exec timeout --kill-after=10 "$((seconds + 360))" node dist/test/rig/soak.js "$@"
