#!/usr/bin/env bash
# tests/bench/run.sh: `make bench`. Runs every bench section in turn; each
# section is its own script (tests/bench/NAME.sh, or NAME.py run with python3)
# that starts what it needs on free loopback ports in a private temp
# directory, prints a table (figure | value | target) and the command lines
# it used, and cleans up after itself.
#
#   tests/bench/run.sh [SECTION...]      (default: the sections listed below)
#
# Sections run by default: producer (HTTP producer: req/s, latency, upload
# MB/s, RSS), dispatch (per-job Redis cost at 1k/100k queued, addJob jobs/s),
# jobs (job latency and throughput next to raw Docker, service RSS),
# localoci (the localOCI back end next to localDocker and raw Docker, and its
# cost step by step). Add a section by adding its script and its name here.
set -u
cd "$(dirname "$0")/../.."
export BUILD="${BUILD:-build}"
sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(producer dispatch jobs localoci)

status=0
for s in "${sections[@]}"; do
    if [ -x "tests/bench/$s.sh" ]; then
        cmd=("tests/bench/$s.sh")
    elif [ -f "tests/bench/$s.py" ]; then
        cmd=(python3 "tests/bench/$s.py")
    else
        echo "bench: no section \"$s\" (tests/bench/$s.sh or .py)" >&2
        status=2
        continue
    fi
    echo "=== bench: $s"
    "${cmd[@]}" || status=1
    echo
done
exit $status
