#!/usr/bin/env bash
# tests/fuzz/run.sh: runs libFuzzer harnesses built by `make fuzz-build`.
#
#   FUZZ_SECONDS=60 tests/fuzz/run.sh NAME...
#
# Each build/fuzz/NAME runs for FUZZ_SECONDS on a working corpus
# build/fuzz/corpus/NAME/ (new inputs go there; the seeds in
# tests/fuzz/corpus/NAME/ are read, never written), with the dictionary
# tests/fuzz/NAME.dict if there is one. A crash, leak, UB report or timeout
# leaves its input in build/fuzz/run/NAME-crash-* (or -leak-, -timeout-) and
# fails the run. Prints one line per harness (executions, rate, corpus) and
# exits 1 if any harness failed.
set -u
cd "$(dirname "$0")/../.."
secs="${FUZZ_SECONDS:-60}"
out=build/fuzz/run
mkdir -p "$out"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp}"
# the harnesses' temporary directories (labs, config files, the fake Docker
# socket) go here, emptied before every run
export TANGO_FUZZ_TMP="$PWD/build/fuzz/tmp"
rm -rf "$TANGO_FUZZ_TMP"
mkdir -p "$TANGO_FUZZ_TMP"
failed=0
printf '%-12s %12s %10s %8s  %s\n' harness executions exec/s corpus result
for name in "$@"; do
    work="build/fuzz/corpus/$name"
    seeds="tests/fuzz/corpus/$name"
    mkdir -p "$work"
    dict=()
    [ -f "tests/fuzz/$name.dict" ] && dict=("-dict=tests/fuzz/$name.dict")
    log="$out/$name.log"
    "build/fuzz/$name" -max_total_time="$secs" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="$out/$name-" "${dict[@]}" "$work" "$seeds" \
        >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    corpus=$(find "$work" -type f | wc -l)
    result=ok
    if [ $rc -ne 0 ]; then
        result="FAILED (exit $rc; log $log)"
        failed=1
    fi
    printf '%-12s %12s %10s %8s  %s\n' "$name" "${execs:-?}" "${rate:-?}" "$corpus" "$result"
    if [ $rc -ne 0 ]; then
        grep -E 'ERROR: |runtime error|SUMMARY|Test unit written|^    #[0-9]' "$log" | head -n 25 |
            sed 's/^/    /'
    fi
done
exit $failed
