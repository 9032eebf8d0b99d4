# tests/bench/lib.sh: helpers shared by the bench sections (sourced).
# Everything a section starts is registered with bench_track and stopped by
# bench_cleanup (on exit, by PID); its files live under $BENCH_TMP.

BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/tango-bench-XXXXXX")
BENCH_PIDS=()

bench_cleanup() {
    local p
    for p in "${BENCH_PIDS[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${BENCH_PIDS[@]}"; do
        wait "$p" 2>/dev/null
    done
    rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

bench_track() { BENCH_PIDS+=("$@"); }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT [PID]: until 127.0.0.1:PORT accepts (10 s), or PID died.
wait_port() {
    local i
    for i in $(seq 1 100); do
        if [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null; then
            return 1
        fi
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# start_redis: a private redis-server; sets REDIS_PORT and REDIS_PID.
start_redis() {
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$BENCH_TMP" >"$BENCH_TMP/redis.log" 2>&1 &
    REDIS_PID=$!
    bench_track "$REDIS_PID"
    wait_port "$REDIS_PORT" "$REDIS_PID" || { echo "bench: redis-server did not start" >&2; return 1; }
}

# status_kb PID FIELD: a /proc/PID/status field in kB (VmRSS, VmHWM).
status_kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null; }

# Results table: row FIGURE VALUE TARGET [VERDICT]; print_table.
BENCH_ROWS=()
row() { BENCH_ROWS+=("$1|$2|$3|${4:-}"); }
print_table() {
    local r
    printf '%-48s | %-24s | %-20s | %s\n' "figure" "value" "target" ""
    printf '%s\n' "-------------------------------------------------------------------------------------------------------"
    for r in "${BENCH_ROWS[@]}"; do
        IFS='|' read -r a b c d <<<"$r"
        printf '%-48s | %-24s | %-20s | %s\n' "$a" "$b" "$c" "$d"
    done
}

# verdict VALUE OP LIMIT: "ok" or "MISSED" (OP is >= or <).
verdict() {
    if awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN { exit !((op == ">=") ? (v >= l) : (v < l)) }'; then
        echo ok
    else
        echo MISSED
    fi
}
