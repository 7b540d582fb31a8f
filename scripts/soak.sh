#!/usr/bin/env bash
# Soak of the fault-injection rig: model-based schedules and crash rounds with fresh seeds for
# N seconds against a real immudb and the real plugin server, then a report (see docs/testing.md).
#   bash scripts/soak.sh --seconds 300      (or: npm run soak -- --seconds 300)
# Exits non-zero when an acknowledged entry was lost or something unproven was accepted.
source "$(dirname "$0")/env.sh"
npm run --silent build
exec node dist/test/rig/soak.js "$@"
