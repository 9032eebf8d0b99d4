#!/usr/bin/env bash
# tests/bench/producer.sh: the producer's figures (issue #2, "Tests and
# figures"). Starts a private redis-server and the release producer
# ($BUILD/tango-producer, default build/) on free loopback ports, then:
#   - wrk requests/s and p50/p99 latency on GET /info/KEY/, GET /open/KEY/LAB/
#     (a lab holding 10 files) and a poll miss;
#   - upload MB/s of one 100 MB file (curl --data-binary @file; mean of 3);
#   - producer RSS idle and during 20 concurrent 100 MB uploads (VmRSS
#     sampled every 100 ms, max reported; VmHWM afterwards).
# Targets: >= 38,000 req/s on /info (10x the original Tango's ~3.8k on this
# 2-core machine), RSS idle < 10 MB, < 64 MB during the 20 uploads.
# Traffic goes to 127.0.0.1 only; everything is stopped and removed on exit.
#
# Knobs (environment): BENCH_SECS (wrk duration, default 10), BENCH_CONNS
# (wrk connections, default 50), BENCH_UPLOADS (concurrent uploads, default 20),
# BENCH_UPLOAD_MB (file size, default 100).
set -u
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh

BUILD="${BUILD:-build}"
SECS="${BENCH_SECS:-10}"
CONNS="${BENCH_CONNS:-50}"
NUP="${BENCH_UPLOADS:-20}"
UPMB="${BENCH_UPLOAD_MB:-100}"
KEY="bench-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
LAB="bench-lab"
PRODUCER="$BUILD/tango-producer"

for tool in wrk curl redis-server python3; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is not installed" >&2; exit 2; }
done
[ -x "$PRODUCER" ] || { echo "bench: $PRODUCER missing (run make)" >&2; exit 2; }

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
start_redis || exit 1
PORT=$(free_port)
cat >"$BENCH_TMP/producer.json" <<JSON
{"keys": ["$KEY"], "courselabs": "$BENCH_TMP/courselabs", "prefix": "bench:",
 "port": $PORT, "bind": "127.0.0.1", "log_level": "warn",
 "redis_url": "redis://127.0.0.1:$REDIS_PORT/0", "max_upload_mb": $((UPMB + 16)),
 "max_connections": 4096}
JSON
"$PRODUCER" -c "$BENCH_TMP/producer.json" >"$BENCH_TMP/producer.log" 2>&1 &
PID=$!
bench_track "$PID"
wait_port "$PORT" "$PID" || { echo "bench: producer did not start:" >&2; cat "$BENCH_TMP/producer.log" >&2; exit 1; }
BASE="http://127.0.0.1:$PORT"

# --- the lab: 10 input files
curl -sf "$BASE/open/$KEY/$LAB/" >/dev/null || { echo "bench: open failed" >&2; exit 1; }
for i in $(seq 1 10); do
    head -c $((1000 * i)) /dev/urandom | curl -sf --data-binary @- -H "Filename: input$i.txt" \
        "$BASE/upload/$KEY/$LAB/" | grep -q '"Uploaded file"' || { echo "bench: upload failed" >&2; exit 1; }
done
nfiles=$(curl -sf "$BASE/open/$KEY/$LAB/" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["files"]))')
[ "$nfiles" = 10 ] || { echo "bench: the lab should list 10 files, got $nfiles" >&2; exit 1; }
sleep 0.5
IDLE_RSS=$(status_kb "$PID" VmRSS)

# --- wrk
wrk_row() {  # NAME PATH EXPECT
    local name="$1" url="$BASE$2" out rps p50 p99 errs
    curl -sf "$url" | grep -q "$3" || { echo "bench: $2 does not answer $3" >&2; return 1; }
    out=$(wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "$url" 2>&1)
    rps=$(awk '/^Requests\/sec:/ {printf "%d", $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errs=$(grep -E "Socket errors|Non-2xx" <<<"$out" | tr -s ' ' | tr '\n' ';')
    row "$name req/s" "${rps:-?}" ">= 38000 (10x Tango)" "$(verdict "${rps:-0}" ">=" 38000)${errs:+ $errs}"
    row "$name latency p50 / p99" "${p50:-?} / ${p99:-?}" "" ""
}
wrk_row "GET /info/KEY/" "/info/$KEY/" "Found info successfully"
wrk_row "GET /open/KEY/LAB/ (10 files)" "/open/$KEY/$LAB/" "Found directory"
wrk_row "GET /poll miss" "/poll/$KEY/$LAB/missing.out/" "Output file not found"
# One connection: every request pays its own Redis round trip (no turn sharing).
out=$(wrk -t1 -c1 -d"$(( (SECS + 1) / 2 ))s" --latency "$BASE/info/$KEY/" 2>&1)
row "GET /info/KEY/ req/s, 1 connection" "$(awk '/^Requests\/sec:/ {printf "%d", $2}' <<<"$out")" "" \
    "p50 $(awk '$1 == "50%" {print $2}' <<<"$out")"
AFTER_WRK_RSS=$(status_kb "$PID" VmRSS)

# --- one 100 MB upload, 3 times
BIG="$BENCH_TMP/upload.bin"
head -c $((UPMB << 20)) /dev/urandom >"$BIG"
total=0
for i in 1 2 3; do
    t=$(curl -sS -o "$BENCH_TMP/up$i.out" -w '%{time_total}' --data-binary @"$BIG" \
        -H "Filename: single$i.bin" "$BASE/upload/$KEY/$LAB/")
    grep -q '"Uploaded file"' "$BENCH_TMP/up$i.out" || { echo "bench: upload $i failed: $(cat "$BENCH_TMP/up$i.out")" >&2; exit 1; }
    total=$(awk -v a="$total" -v b="$t" 'BEGIN {print a + b}')
done
MBS=$(awk -v t="$total" -v mb="$UPMB" 'BEGIN {printf "%.0f", 3 * mb / t}')
rm -f "$BENCH_TMP/courselabs/"*"-$LAB/single"*.bin

# --- RSS during concurrent uploads
pids=()
t0=$(date +%s.%N)
for i in $(seq 1 "$NUP"); do
    curl -sS -o "$BENCH_TMP/conc$i.out" --data-binary @"$BIG" -H "Filename: conc$i.bin" \
        "$BASE/upload/$KEY/$LAB/" &
    pids+=($!)
done
max_rss=0
running=1
while [ $running -eq 1 ]; do
    running=0
    for p in "${pids[@]}"; do
        kill -0 "$p" 2>/dev/null && running=1 && break
    done
    r=$(status_kb "$PID" VmRSS)
    [ -n "$r" ] && [ "$r" -gt "$max_rss" ] && max_rss=$r
    sleep 0.1
done
for p in "${pids[@]}"; do wait "$p"; done
t1=$(date +%s.%N)
ok=$(grep -l '"Uploaded file"' "$BENCH_TMP"/conc*.out 2>/dev/null | wc -l)
CONC_MBS=$(awk -v a="$t0" -v b="$t1" -v n="$ok" -v mb="$UPMB" 'BEGIN {printf "%.0f", n * mb / (b - a)}')
HWM=$(status_kb "$PID" VmHWM)
kill -0 "$PID" 2>/dev/null || { echo "bench: the producer died" >&2; exit 1; }

row "upload ${UPMB} MB, one client (mean of 3)" "$MBS MB/s" "" ""
row "$NUP concurrent ${UPMB} MB uploads" "$ok ok, $CONC_MBS MB/s total" "all $NUP ok" \
    "$([ "$ok" = "$NUP" ] && echo ok || echo MISSED)"
mb() { awk -v k="$1" 'BEGIN {printf "%.1f MB", k / 1024}'; }
row "producer RSS idle" "$(mb "$IDLE_RSS")" "< 10 MB" "$(verdict "$IDLE_RSS" "<" 10240)"
row "producer RSS after the wrk runs" "$(mb "$AFTER_WRK_RSS")" "" ""
row "producer RSS max during $NUP uploads" "$(mb "$max_rss")" "< 64 MB" \
    "$(verdict "$max_rss" "<" 65536)"
row "producer RSS peak (VmHWM), whole run" "$(mb "$HWM")" "< 64 MB" "$(verdict "$HWM" "<" 65536)"
print_table
echo
echo "commands:"
echo "  wrk -t1 -c$CONNS -d${SECS}s --latency http://127.0.0.1:PORT/info/KEY/   (also /open/KEY/$LAB/, /poll/KEY/$LAB/missing.out/)"
echo "  wrk -t1 -c1 -d$(( (SECS + 1) / 2 ))s --latency http://127.0.0.1:PORT/info/KEY/"
echo "  curl -sS -o OUT -w '%{time_total}' --data-binary @upload.bin -H 'Filename: singleN.bin' http://127.0.0.1:PORT/upload/KEY/$LAB/   (x3, sequential)"
echo "  $NUP x the same curl in parallel (Filename: concN.bin); producer VmRSS from /proc/PID/status every 100 ms"
echo "  producer: $PRODUCER -c producer.json (log_level warn); redis-server $(redis-server --version | awk '{print $3}') on loopback; $(nproc) cores"
echo "  load average at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews req/s)"
if grep -q "MISSED" <<<"$(print_table)"; then
    exit 1
fi
exit 0
