#!/usr/bin/env bash
# Runs the whole suite several times while busy loops compete for the CPU, to shake out
# timing races before CI does (a 2-core CI machine is slower than a quiet workstation).
#
#   scripts/stress.sh [RUNS] [HOGS]      defaults: 5 runs, one busy loop per core
#
# Each run's output goes to target/stress/run-N.log; the script prints which tests
# failed and exits non-zero if any run failed. The backends must be installed (run
# scripts/test.sh once first).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

runs=${1:-5}
hogs=${2:-$(nproc)}
logs=target/stress
mkdir -p "$logs"

FCGI_INTEROP=require cargo test --no-run --quiet

hog_pids=()
stop_hogs() {
    if [[ ${#hog_pids[@]} -gt 0 ]]; then
        kill "${hog_pids[@]}" 2>/dev/null || true
    fi
}
trap stop_hogs EXIT
for _ in $(seq 1 "$hogs"); do
    (while :; do :; done) &
    hog_pids+=($!)
done

failed_runs=0
for run in $(seq 1 "$runs"); do
    log="$logs/run-$run.log"
    if FCGI_INTEROP=require cargo test >"$log" 2>&1; then
        echo "run $run/$runs: ok"
    else
        failed_runs=$((failed_runs + 1))
        echo "run $run/$runs: FAILED ($log)"
        grep -E '^test .* FAILED$' "$log" || true
    fi
done
echo "$failed_runs of $runs runs failed with $hogs busy loops"
[[ $failed_runs == 0 ]]
