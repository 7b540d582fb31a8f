#!/usr/bin/env bash
# Runs the benchmarks (bench/) against a real immudb and the real Kong JS plugin server, on
# Node 24, installing what is missing first; prints each benchmark's tables and JSON, then every
# target next to its measured value. Takes a few minutes. Options (passed to bench/run.ts):
#   --quick          shorter runs, fewer points (about half the time, noisier)
#   --only a,b       only these: handler, pipeline, verify, memory, scaling, search, goals, fail-closed
#   --no-profile     skip the CPU profile of the plugin server in the pipeline benchmark
# Results also go to dist/bench-results/latest.json (and a timestamped copy).
source "$(dirname "$0")/env.sh"
npm run --silent build || echo "bench: the build reported type errors (above); benchmarking what tsc emitted" >&2
test -f dist/bench/run.js || { echo "bench: build produced no dist/bench/run.js" >&2; exit 1; }
exec node dist/bench/run.js "$@"
