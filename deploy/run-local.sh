#!/usr/bin/env bash
# run-local.sh: brings the whole service up on this machine (what `make run`
# does): packages and dockerd (setup-host.sh), Redis with AOF, the
# autograding image (built offline if absent), one producer on :3000 and one
# consumer, all from this checkout. Logs and state go to run/.
#
#   deploy/run-local.sh          start (or restart) everything
#   deploy/run-local.sh stop     stop producer, consumer and Redis
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="$PWD/run"
CONFIG="deploy/local.json"
mkdir -p "$RUN/redis" "$RUN/courselabs"

stop_pidfile() {
  local f="$RUN/$1.pid"
  if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then
    kill -TERM "$(cat "$f")" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$(cat "$f")" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$f"
}

if [ "${1:-}" = "stop" ]; then
  stop_pidfile consumer
  stop_pidfile producer
  redis-cli -p 6379 shutdown nosave >/dev/null 2>&1 || true
  echo "stopped"
  exit 0
fi

deploy/setup-host.sh
make -s all

if ! redis-cli -p 6379 ping >/dev/null 2>&1; then
  sed "s|^dir .*|dir $RUN/redis|" deploy/redis.conf > "$RUN/redis.conf"
  redis-server "$RUN/redis.conf" --daemonize yes --logfile "$RUN/redis.log"
  for _ in $(seq 1 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

docker image inspect autograding_image >/dev/null 2>&1 || make image

stop_pidfile consumer
stop_pidfile producer
nohup build/tango-producer -c "$CONFIG" >>"$RUN/producer.log" 2>&1 &
echo $! >"$RUN/producer.pid"
nohup build/tango-consumer -c "$CONFIG" >>"$RUN/consumer.log" 2>&1 &
echo $! >"$RUN/consumer.pid"
for _ in $(seq 1 50); do curl -sf http://127.0.0.1:3000/ >/dev/null && break; sleep 0.1; done

echo "VMMS back end: ${TANGO_VMMS:-localDocker} (TANGO_VMMS=localOCI make run: the daemonless one)"
cat <<'MSG'

Tango is up: producer http://127.0.0.1:3000 (key "test"), consumer running.
Logs: run/producer.log run/consumer.log    Stop: deploy/run-local.sh stop

Submit a job:
  printf 'all:\n\techo hello from the grader\n' > /tmp/Makefile
  curl -s http://127.0.0.1:3000/open/test/demo/
  curl -s -H 'Filename: Makefile' --data-binary @/tmp/Makefile http://127.0.0.1:3000/upload/test/demo/
  curl -s -d '{"image":"autograding_image","jobName":"demo","output_file":"demo.out",
       "files":[{"localFile":"Makefile","destFile":"Makefile"}]}' http://127.0.0.1:3000/addJob/test/demo/
  sleep 2; curl -s http://127.0.0.1:3000/poll/test/demo/demo.out/
MSG
