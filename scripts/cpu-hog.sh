#!/usr/bin/env bash
# Keeps every core busy to reproduce a loaded machine: one spinning process per core (at nice 0,
# so it competes with the tests as an equal), for N seconds (default 60) or until this script is
# killed or interrupted; it always stops its spinners and exits by itself.
#   bash scripts/cpu-hog.sh 120 &  hog=$!;  bash scripts/test.sh dist/test/unit/batcher.test.js;  kill $hog
# KIA_HOG_PROCS overrides the number of spinners (default: the number of cores).
set -euo pipefail
seconds="${1:-60}"
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -gt 0 ] || { echo "usage: cpu-hog.sh [seconds>0]" >&2; exit 2; }
procs="${KIA_HOG_PROCS:-$(nproc)}"
pids=()
stop() {
  trap - EXIT INT TERM
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'stop; exit 0' INT TERM
for ((i = 0; i < procs; i++)); do
  # Each spinner also ends by itself at the deadline, should this script be SIGKILLed.
  nice -n 0 bash -c "end=\$((SECONDS + $seconds)); while [ \$SECONDS -lt \$end ]; do :; done" &
  pids+=($!)
done
echo "cpu-hog: $procs busy process(es) for ${seconds} s (pids ${pids[*]})" >&2
# Sleep in short steps so a TERM is handled promptly.
end=$((SECONDS + seconds))
while [ $SECONDS -lt "$end" ]; do sleep 1; done
