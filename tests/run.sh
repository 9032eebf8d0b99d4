#!/usr/bin/env bash
# tests/run.sh: runs every test and prints one closing line "N passed, N failed".
#
#   tests/run.sh [--build DIR]... [--only PATTERN]
#
# For each build directory (default: $BUILD or build) it runs
#   - every cmocka unit test binary DIR/tests/test_*   (counted from cmocka's
#     "[  PASSED  ]"/"[  FAILED  ]" summary lines), then
#   - every integration test tests/integration/test_*.{py,sh} with BUILD=DIR
#     in the environment (counted from its "ok NAME" / "FAIL NAME: why" /
#     "skip NAME: why" lines).
# A test program that exits non-zero without printing a FAIL line counts as one
# failure, so a crash (or a sanitizer report) is never lost. Skips (cmocka's
# "[  SKIPPED ]" and "skip" lines) are counted and printed, never as passes;
# the closing line is "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/.."
builds=()
only=""
while [ $# -gt 0 ]; do
    case "$1" in
        --build) builds+=("$2"); shift 2 ;;
        --only) only="$2"; shift 2 ;;
        *) echo "usage: $0 [--build DIR]... [--only PATTERN]" >&2; exit 2 ;;
    esac
done
[ ${#builds[@]} -gt 0 ] || builds=("${BUILD:-build}")

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=86}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp}"
export PYTHONDONTWRITEBYTECODE=1

passed=0
failed=0
skipped=0
logdir="tests/.run"
mkdir -p "$logdir"

run_one() {  # $1 = label, rest = command
    local label="$1"; shift
    local log="$logdir/$(echo "$label" | tr '/ ' '__').log"
    local start=$SECONDS
    "$@" >"$log" 2>&1
    local rc=$?
    local p f
    p=$(grep -cE '^ok ' "$log")
    f=$(grep -cE '^FAIL ' "$log")
    local cp cf
    cp=$(sed -nE 's/^\[  PASSED  \] ([0-9]+) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    cf=$(sed -nE 's/^\[  FAILED  \] ([0-9]+) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    local s cs
    s=$(grep -cE '^skip ' "$log")
    cs=$(sed -nE 's/^\[  SKIPPED \] ([0-9]+) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    p=$((p + cp)); f=$((f + cf)); s=$((s + cs))
    skipped=$((skipped + s))
    if [ $rc -ne 0 ] && [ $f -eq 0 ]; then
        f=1
        echo "FAIL $label: exited with status $rc" >>"$log"
    fi
    passed=$((passed + p)); failed=$((failed + f))
    printf '%-60s %3d passed %3d failed %2d skipped  (%ds)\n' "$label" "$p" "$f" "$s" \
        $((SECONDS - start))
    if [ "$s" -gt 0 ]; then grep -E '^skip |\[  SKIPPED \]' "$log" | head -n 10 | sed 's/^/    /'; fi
    if [ $f -ne 0 ]; then
        grep -E '^FAIL |\[  FAILED  \]|\[  ERROR   \]|ERROR: (Address|Leak)Sanitizer|runtime error' "$log" | head -n 20 | sed 's/^/    /'
        echo "    (full log: $log; last lines below)"
        tail -n 15 "$log" | sed 's/^/    | /'
    fi
}

for b in "${builds[@]}"; do
    for t in "$b"/tests/test_*; do
        [ -x "$t" ] || continue
        [ -n "$only" ] && [[ "$t" != *$only* ]] && continue
        run_one "$b/$(basename "$t")" "$t"
    done
    for t in tests/integration/test_*.py tests/integration/test_*.sh; do
        [ -f "$t" ] || continue
        [ -n "$only" ] && [[ "$t" != *$only* ]] && continue
        case "$t" in
            *.py) run_one "$b:$(basename "$t")" env BUILD="$b" python3 "$t" ;;
            *.sh) run_one "$b:$(basename "$t")" env BUILD="$b" bash "$t" ;;
        esac
    done
done

echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ] && [ $passed -gt 0 ]
