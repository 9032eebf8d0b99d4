#!/usr/bin/env bash
# tests/bench/dispatch.sh: the consumer's per-job Redis cost (lease, start, finish,
# end) with 1k and 100k jobs queued (build/bench/dispatch against a private
# redis-server), and addJob throughput through the producer with wrk and a
# Lua script (every request a real job into Redis).
set -u
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
BUILD="${BUILD:-build}"
[ -x "$BUILD/bench/dispatch" ] || { echo "bench: $BUILD/bench/dispatch missing (make bench)" >&2; exit 2; }
start_redis || exit 1
echo "figure                                       |   value    | note"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" "$BUILD/bench/dispatch" || exit 1

KEY="bench-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PORT=$(free_port)
cat >"$BENCH_TMP/producer.json" <<JSON
{"keys": ["$KEY"], "courselabs": "$BENCH_TMP/courselabs", "prefix": "addjob:",
 "port": $PORT, "bind": "127.0.0.1", "log_level": "warn",
 "redis_url": "redis://127.0.0.1:$REDIS_PORT/0",
 "max_queued_per_course": 0}
JSON
"$BUILD/tango-producer" -c "$BENCH_TMP/producer.json" >"$BENCH_TMP/producer.log" 2>&1 &
PID=$!
bench_track "$PID"
wait_port "$PORT" "$PID" || exit 1
BASE="http://127.0.0.1:$PORT"
curl -s "$BASE/open/$KEY/lab/" >/dev/null
printf 'all:\n\techo hi\n' | curl -s -H 'Filename: Makefile' --data-binary @- "$BASE/upload/$KEY/lab/" >/dev/null
cat >"$BENCH_TMP/addjob.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"image":"autograding_image","jobName":"bench","output_file":"out.txt",' ..
           '"files":[{"localFile":"Makefile","destFile":"Makefile"}],"timeout":20}'
wrk.headers["Content-Type"] = "application/json"
LUA
out=$(wrk -t1 -c50 -d10s -s "$BENCH_TMP/addjob.lua" "$BASE/addJob/$KEY/lab/" 2>&1)
rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
reqs=$(echo "$out" | awk '/requests in/ {print $1}')
queued=$(redis-cli -p "$REDIS_PORT" LLEN addjob:queue:c:normal:lab)
printf '%-44s | %10s | %s\n' "addJob jobs/s (wrk -t1 -c50 -d10s, Lua)" "$rps" "target >= 5000; $reqs answered, $queued queued in Redis"
[ "$queued" -ge "$reqs" ] 2>/dev/null || echo "bench: warning: fewer jobs queued than answered"
