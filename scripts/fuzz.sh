#!/usr/bin/env bash
# Runs every cargo-fuzz target (or the ones named) for MINUTES each, one after the
# other, from the seed corpus in fuzz/seeds/<target>/ plus what earlier runs kept in
# fuzz/corpus/<target>/ (git-ignored), and prints one table: executions, executions per
# second, corpus size and findings (crash, leak, timeout and OOM artifacts) per target.
#
#   scripts/fuzz.sh [MINUTES] [TARGET...]       # default: 1 minute, every target
#   FUZZ_RUNS=10000000 scripts/fuzz.sh 60       # the 10 M campaign: stops at 10 M inputs
#   FUZZ_SANITIZER=address scripts/fuzz.sh 5    # with ASan (about 4x slower; see fuzz/README.md)
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Everything runs
# under `nice -n 19`. Exit status 1 when any target had a finding.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"

MINUTES=${1:-1}
shift || true
SANITIZER=${FUZZ_SANITIZER:-none}
RUNS=${FUZZ_RUNS:--1}
mapfile -t ALL < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^tower-fastcgi-fuzz$')
TARGETS=("${@:-${ALL[@]}}")

SECS=$(awk -v m="$MINUTES" 'BEGIN { printf "%d", m * 60 }')
# -O: optimised, no debug assertions (the targets' own asserts stay). -s none by default:
# the crate forbids unsafe code, so ASan only watches dependencies, at 4x the cost.
nice -n 19 cargo +nightly fuzz build -O -s "$SANITIZER" >&2
BIN=target/x86_64-unknown-linux-gnu/release

rows=()
found_any=0
for t in "${TARGETS[@]}"; do
    # A missing seed directory would make libFuzzer exit at once, running nothing.
    mkdir -p "corpus/$t" "artifacts/$t" "seeds/$t"
    log=$(mktemp)
    start=$(date +%s.%N)
    # The first directory is the one libFuzzer adds to; the seeds are only read.
    nice -n 19 "$BIN/$t" -max_total_time="$SECS" -runs="$RUNS" -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" "corpus/$t" "seeds/$t" >"$log" 2>&1 || true
    end=$(date +%s.%N)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    execs=${execs:-0}
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", b - a }')
    rate=$(awk -v n="$execs" -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", n / (b - a) }')
    corpus=$(find "corpus/$t" -type f | wc -l)
    findings=$(find "artifacts/$t" -type f | wc -l)
    ((findings == 0)) || { found_any=1; echo "fuzz.sh: $t: findings in fuzz/artifacts/$t/ (log: $log)" >&2; }
    # A target that ran nothing did not pass: say so, and keep its log.
    ((execs > 0)) || { found_any=1; findings="none-ran"; echo "fuzz.sh: $t ran no input (log: $log)" >&2; }
    if [[ $findings == 0 ]]; then rm -f "$log"; fi
    rows+=("$(printf '%-10s %8s %12s %10s %8s %9s' "$t" "$secs" "$execs" "$rate" "$corpus" "$findings")")
done

printf '%-10s %8s %12s %10s %8s %9s\n' target seconds execs execs/s corpus findings
printf '%s\n' "${rows[@]}"
echo "(sanitizer: $SANITIZER; runs cap: $RUNS)"
exit "$found_any"
