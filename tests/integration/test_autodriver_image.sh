#!/usr/bin/env bash
# test_autodriver_image.sh: runs the autodriver inside the real autograding
# image, the way Tango does (docs/api.md, "Inside the container"): a job
# directory bind-mounted at /home/mount, then as root
#   cp -r mount/* autolab/; su autolab -c "autodriver ARGS autolab > output/feedback 2>&1"
# in a fresh `docker run --rm` container per check.
#
# The image gives the layout (users, directories, su, make, gcc, python3);
# the autodriver under test is $BUILD/autodriver, installed setuid root and
# mounted over the image's /usr/bin/autodriver (for the sanitizer build its
# runtime libraries are mounted too). One check also runs the image's own
# installed autodriver. Needs `make image` first: a missing image is a FAIL.
#
# Prints "ok NAME" / "FAIL NAME: reason" per check; exits 1 if any failed.
set -u
cd "$(dirname "$0")/../.."
BUILD="${BUILD:-build}"
IMAGE="${AUTOGRADING_IMAGE:-autograding_image}"
GRADER_UID=1001

failures=0
ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; failures=$((failures + 1)); }

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "FAIL image_present: docker image $IMAGE not found (run: make image)"
    exit 1
fi
if [ ! -x "$BUILD/autodriver" ]; then
    echo "FAIL binary_present: $BUILD/autodriver not built (run: make)"
    exit 1
fi

TMP="$(mktemp -d /tmp/test_autodriver_image.XXXXXX)"
chmod 755 "$TMP"
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT

install -o root -g root -m 4755 "$BUILD/autodriver" "$TMP/autodriver"
MOUNTS=(-v "$TMP/autodriver:/usr/bin/autodriver:ro")
DOCKER_RUN=(timeout 120 docker run --rm --pids-limit 256 --memory 512m)
if ldd "$BUILD/autodriver" >/dev/null 2>&1; then   # dynamic: the sanitizer build
    # LeakSanitizer stops the process with ptrace, which a setuid process may
    # only do with CAP_SYS_PTRACE; the release build runs without it.
    DOCKER_RUN+=(--cap-add SYS_PTRACE)
    while read -r lib; do
        case "$(basename "$lib")" in
            libasan.so*|libubsan.so*|libstdc++.so*) MOUNTS+=(-v "$lib:$lib:ro") ;;
        esac
    done < <(ldd "$BUILD/autodriver" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p')
fi

# Counts live processes of the grading user from /proc (no ps in the image).
COUNT_PROCS="for f in /proc/[0-9]*/status; do awk -v id=$GRADER_UID '/^State:/{s=\$2} /^Uid:/{if ((\$2==id || \$3==id) && s!=\"Z\") print FILENAME}' \"\$f\" 2>/dev/null; done | wc -l"

# RLIMIT_NPROC counts every process of the uid on the whole Docker host, in
# all containers (no user namespaces), so jobs here use -u 1000 rather than
# Tango's 100: other tests running autograde jobs at the same time must not
# make ours fail. Only the nproc check uses a tight limit.
#
# run_job NAME ARGS [PRE] [POST]: runs the legacy command on the job directory
# $TMP/NAME (which holds a Makefile). Leaves in that directory: feedback, rc
# (autodriver's exit code), ms (its run time) and post (POST's output).
run_job() {
    local name="$1" args="$2" pre="${3:-true}" post="${4:-true}"
    local dir="$TMP/$name"
    local script="$pre
cp -r mount/* autolab/
s=\$(date +%s%N)
su autolab -c \"autodriver $args autolab > output/feedback 2>&1\"
echo \$? > mount/rc
e=\$(date +%s%N)
echo \$(( (e - s) / 1000000 )) > mount/ms
cp output/feedback mount/feedback
{ $post ; } > mount/post 2>&1"
    "${DOCKER_RUN[@]}" "${MOUNTS[@]}" -v "$dir:/home/mount" "$IMAGE" sh -c "$script" \
        >"$dir/docker.log" 2>&1
}

newjob() {  # newjob NAME: creates $TMP/NAME; the Makefile comes on stdin
    mkdir -p "$TMP/$1"
    cat >"$TMP/$1/Makefile"
}

line() { sed -n "${2}p" "$TMP/$1/feedback"; }
rc() { cat "$TMP/$1/rc" 2>/dev/null || echo none; }
sanitizer_clean() {  # no sanitizer report anywhere in the feedback
    ! grep -qaE 'Sanitizer|runtime error:' "$TMP/$1/feedback" 2>/dev/null
}
why() {  # a short description of what went wrong, for FAIL lines
    printf 'rc=%s feedback=[%s] docker=[%s]' "$(rc "$1")" \
        "$(head -c 300 "$TMP/$1/feedback" 2>/dev/null | tr '\n\0' '|.')" \
        "$(tail -c 200 "$TMP/$1/docker.log" 2>/dev/null | tr '\n' '|')"
}

# ---------------------------------------------------------------- layout
check_layout() {
    local out
    out="$("${DOCKER_RUN[@]}" "$IMAGE" sh -c "
        pwd
        stat -c '%n %U %a' /usr/bin/autodriver /home/autolab /home/autograde /home/output /home/mount
        id autolab; id autograde
        for t in su make gcc python3; do command -v \$t; done
        su autograde -s /bin/sh -c 'sleep 30 >/dev/null 2>&1 &'
        sleep 0.2
        echo procs=\$($COUNT_PROCS)" 2>&1)"
    local want
    for want in "^/home$" "/usr/bin/autodriver root 4755" "/home/autolab autolab 755" \
        "/home/autograde autograde 755" "/home/output autolab 755" "/home/mount root 755" \
        "uid=1000\\(autolab\\)" "uid=$GRADER_UID\\(autograde\\)" "/su$" "/make$" "/gcc$" "/python3$" \
        "^procs=1$"; do
        if ! grep -qE -- "$want" <<<"$out"; then
            fail image_layout "missing '$want' in: $(tr '\n' '|' <<<"$out")"
            return
        fi
    done
    ok image_layout
}

check_installed_autodriver() {  # the image's own setuid autodriver, nothing mounted
    newjob installed <<'EOF'
all:
	@echo installed works
EOF
    local saved=("${MOUNTS[@]}")
    MOUNTS=()
    run_job installed "-u 1000 -f 104857600 -t 20 -o 1024000"
    MOUNTS=("${saved[@]}")
    if [ "$(rc installed)" = 0 ] && [ "$(line installed 1)" = "Autodriver: Job exited with status 0" ] &&
        grep -qx "installed works" "$TMP/installed/feedback"; then
        ok image_installed_autodriver
    else
        fail image_installed_autodriver "$(why installed)"
    fi
}

# ---------------------------------------------------------------- jobs
check_hello() {
    newjob hello <<'EOF'
all:
	@echo "hello, world"
	@id -un
	@pwd
	@echo "HOME=$$HOME"
EOF
    run_job hello "-u 1000 -f 104857600 -t 20 -o 1024000"
    local f="$TMP/hello/feedback"
    if [ "$(rc hello)" != 0 ]; then fail hello_world "exit code $(why hello)"; return; fi
    if [ "$(line hello 1)" != "Autodriver: Job exited with status 0" ]; then
        fail hello_world "first line $(why hello)"; return
    fi
    if ! line hello 2 | grep -qE '^Autodriver: wall_time=[0-9]+\.[0-9]{3}s peak_memory_kb=[1-9][0-9]*$'; then
        fail hello_world "no wall_time line $(why hello)"; return
    fi
    local body
    body="$(tail -n +3 "$f")"
    if [ "$body" != "$(printf 'hello, world\nautograde\n/home/autograde/autolab\nHOME=/home/autograde')" ]; then
        fail hello_world "output $(why hello)"; return
    fi
    sanitizer_clean hello || { fail hello_world "sanitizer report $(why hello)"; return; }
    ok hello_world
}

check_make_fails() {
    newjob failing <<'EOF'
all:
	@echo about to fail
	@false
EOF
    run_job failing "-u 1000 -f 104857600 -t 20 -o 1024000"
    if [ "$(rc failing)" = 0 ] && [ "$(line failing 1)" = "Autodriver: Job exited with status 2" ] &&
        grep -qx "about to fail" "$TMP/failing/feedback" && sanitizer_clean failing; then
        ok make_failing
    else
        fail make_failing "$(why failing)"
    fi
}

check_timeout() {
    newjob loop <<'EOF'
all:
	@echo looping
	@setsid sleep 1000 >/dev/null 2>&1 &
	@sh -c 'trap "" HUP INT TERM; while :; do :; done' &
	@while :; do :; done
EOF
    run_job loop "-u 1000 -f 104857600 -t 3 -o 1024000" "" "echo procs=\$($COUNT_PROCS)"
    local ms
    ms="$(cat "$TMP/loop/ms" 2>/dev/null || echo 0)"
    if [ "$(rc loop)" != 2 ] || [ "$(line loop 1)" != "Autodriver: Job timed out after 3 seconds" ]; then
        fail timeout "$(why loop)"
    elif [ "$ms" -lt 2900 ] || [ "$ms" -gt 6000 ]; then
        fail timeout "autodriver took ${ms} ms, expected about 3000"
    elif ! grep -qx "looping" "$TMP/loop/feedback"; then
        fail timeout "output missing $(why loop)"
    elif ! grep -qx "procs=0" "$TMP/loop/post"; then
        fail timeout "grading user's processes survived: $(cat "$TMP/loop/post")"
    elif ! sanitizer_clean loop; then
        fail timeout "sanitizer report $(why loop)"
    else
        ok timeout
    fi
}

# A fork bomb fills the container's pids limit (256): the kill must still
# work (it needs no fork at that moment), so the job ends as a timeout
# (exit 2), not as an OS error (exit 3) that Tango would retry.
check_fork_bomb() {
    newjob bomb <<'EOF'
all:
	@echo bombing
	@bash -c ':(){ :|:& };: ; exec sleep 60'
EOF
    # exec: the job's own sleep needs no fork once the bomb has filled the
    # pids limit, so the job reliably runs into its timeout.
    run_job bomb "-u 1000000 -f 104857600 -t 4 -o 1024000" "" "echo procs=\$($COUNT_PROCS)"
    if [ "$(rc bomb)" != 2 ] || ! grep -qx "Autodriver: Job timed out after 4 seconds" "$TMP/bomb/feedback"; then
        fail fork_bomb "$(why bomb)"
    elif grep -qE "Error forking to kill|Gave up killing" "$TMP/bomb/feedback"; then
        fail fork_bomb "the kill failed: $(grep -E '^Autodriver:' "$TMP/bomb/feedback" | head -3 | tr '\n' '|')"
    elif ! grep -q "Resource temporarily unavailable" "$TMP/bomb/feedback"; then
        fail fork_bomb "the bomb never filled the pids limit $(why bomb)"
    elif ! grep -qx "procs=0" "$TMP/bomb/post"; then
        fail fork_bomb "grading user's processes survived: $(cat "$TMP/bomb/post")"
    elif ! sanitizer_clean bomb; then
        fail fork_bomb "sanitizer report $(why bomb)"
    else
        ok fork_bomb
    fi
}

check_huge_output() {
    newjob huge <<'EOF'
all:
	@echo HEAD-MARKER; head -c 5000000 /dev/zero | tr '\0' 'x'; echo; echo TAIL-MARKER
EOF
    run_job huge "-u 1000 -f 104857600 -t 20 -o 1000"
    local d="$TMP/huge"
    { echo HEAD-MARKER; head -c 5000000 /dev/zero | tr '\0' 'x'; echo; echo TAIL-MARKER; } >"$d/full"
    { head -c 500 "$d/full"; printf '\n...[excess bytes elided]...\n'; tail -c 500 "$d/full"; } >"$d/expected"
    tail -n +3 "$d/feedback" >"$d/body" 2>/dev/null
    local size
    size="$(stat -c %s "$d/feedback" 2>/dev/null || echo 0)"
    if [ "$(rc huge)" != 0 ] || [ "$(line huge 1)" != "Autodriver: Job exited with status 0" ]; then
        fail huge_output "$(why huge)"
    elif [ "$size" -gt 1200 ]; then
        fail huge_output "feedback is $size bytes, expected at most 1200"
    elif ! cmp -s "$d/body" "$d/expected"; then
        fail huge_output "output is not head 500 + elision line + tail 500: $(why huge)"
    else
        ok huge_output
    fi
}

check_binary_output() {
    newjob binary <<'EOF'
all:
	@printf 'a\000b\377\376\303\050\355\240\200\r\nend'
EOF
    run_job binary "-t 20"
    printf 'a\000b\377\376\303\050\355\240\200\r\nend' >"$TMP/binary/expected"
    tail -n +3 "$TMP/binary/feedback" >"$TMP/binary/body" 2>/dev/null
    if [ "$(rc binary)" = 0 ] && cmp -s "$TMP/binary/body" "$TMP/binary/expected"; then
        ok binary_output
    else
        fail binary_output "bytes changed: $(why binary)"
    fi
}

check_leftovers() {
    newjob leftovers <<'EOF'
all:
	@setsid sleep 1000 >/dev/null 2>&1 &
	@sh -c 'trap "" HUP INT TERM; exec sleep 1000' >/dev/null 2>&1 &
	@echo secret > /tmp/left-in-tmp
	@mkdir -p /tmp/dir-in-tmp/sub && echo x > /tmp/dir-in-tmp/sub/f
	@echo y > /var/tmp/left-in-var-tmp
	@echo z > $$HOME/left-in-home
	@ln -s /etc/passwd $$HOME/link-to-passwd
	@ln -s /etc /tmp/link-to-etc
	@ln -s /root /var/tmp/link-to-root
	@rm -f $$HOME/output.log; ln -s /etc/shadow $$HOME/output.log
	@echo planted
EOF
    local pre="sha256sum /etc/passwd /etc/shadow > /root/sums; ls /etc | wc -l > /root/etc-count"
    local post="echo procs=\$($COUNT_PROCS)
echo files=\$(find /home/autograde /tmp /var/tmp -mindepth 1 -user autograde | wc -l)
find /home/autograde /tmp /var/tmp -mindepth 1 -user autograde
sha256sum -c --quiet /root/sums && echo sums=ok
[ \"\$(ls /etc | wc -l)\" = \"\$(cat /root/etc-count)\" ] && echo etc=ok
[ -d /home/autograde ] && echo home=ok"
    run_job leftovers "-u 1000 -f 104857600 -t 20 -o 1024000" "$pre" "$post"
    local p="$TMP/leftovers/post"
    if [ "$(rc leftovers)" != 0 ] || [ "$(line leftovers 1)" != "Autodriver: Job exited with status 0" ]; then
        fail leftovers "$(why leftovers)"
    elif ! grep -qx planted "$TMP/leftovers/feedback"; then
        fail leftovers "job output lost: $(why leftovers)"
    elif grep -qaE '^root:' "$TMP/leftovers/feedback"; then
        fail leftovers "the feedback shows /etc/shadow through a planted output.log link"
    elif ! grep -qx procs=0 "$p"; then
        fail leftovers "processes survived: $(tr '\n' '|' <"$p")"
    elif ! grep -qx files=0 "$p"; then
        fail leftovers "files survived: $(tr '\n' '|' <"$p")"
    elif ! grep -qx sums=ok "$p" || ! grep -qx etc=ok "$p" || ! grep -qx home=ok "$p"; then
        fail leftovers "root-owned files were touched: $(tr '\n' '|' <"$p")"
    else
        ok leftovers
    fi
}

check_fsize() {
    newjob fsize <<'EOF'
all:
	-head -c 100000 /dev/zero > big
	@echo size=$$(stat -c %s big)
EOF
    run_job fsize "-u 1000 -f 10000 -t 20 -o 1024000"
    if [ "$(rc fsize)" = 0 ] && grep -qx "size=10000" "$TMP/fsize/feedback" &&
        grep -q "File size limit exceeded" "$TMP/fsize/feedback"; then
        ok rlimit_fsize
    else
        fail rlimit_fsize "$(why fsize)"
    fi
}

check_nproc() {
    newjob nproc <<'EOF'
all:
	@python3 forker.py
EOF
    cat >"$TMP/nproc/forker.py" <<'EOF'
import os, time
n = 0
for i in range(200):
    try:
        pid = os.fork()
    except OSError as e:
        print("fork failed:", e.strerror)
        break
    if pid == 0:
        time.sleep(2)
        os._exit(0)
    n += 1
print("forked", n)
EOF
    run_job nproc "-u 50 -f 104857600 -t 20 -o 1024000"
    local forked
    forked="$(sed -n 's/^forked \([0-9]*\)$/\1/p' "$TMP/nproc/feedback" 2>/dev/null)"
    if [ "$(rc nproc)" = 0 ] && grep -q "^fork failed: Resource temporarily unavailable" "$TMP/nproc/feedback" &&
        [ -n "$forked" ] && [ "$forked" -lt 50 ]; then
        ok rlimit_nproc
    else
        fail rlimit_nproc "$(why nproc)"
    fi
}

check_refusals() {
    newjob refuse <<'EOF'
all:
	@echo should not run
EOF
    local out
    out="$("${DOCKER_RUN[@]}" "${MOUNTS[@]}" -v "$TMP/refuse:/home/mount" "$IMAGE" sh -c '
        cp -r mount/* autolab/
        autodriver -t 5 autolab; echo "root rc=$?"
        su autograde -c "autodriver -t 5 autolab"; echo "autograde rc=$?"
        su autolab -c "autodriver -t abc autolab"; echo "badnum rc=$?"
        su autolab -c "autodriver -t 5"; echo "nodir rc=$?"
        su autolab -c "autodriver -t 5 /home/autolab"; echo "slash rc=$?"
        su autolab -c "autodriver -t 5 missing"; echo "missing rc=$?"
        su autolab -c "cd / && autodriver -t 5 etc"; echo "notmine rc=$?"
        [ -f /etc/passwd ] && [ "$(stat -c %U /etc)" = root ] && echo etc intact
        ls autolab' 2>&1)"
    local want
    for want in "should not be run as root" "^root rc=1$" "grading user autograde" \
        "^autograde rc=1$" "The argument to timeout must be a nonnegative integer" \
        "^Usage: autodriver" "^badnum rc=1$" "Too few arguments" "^nodir rc=1$" \
        "^slash rc=1$" "^Autodriver: Error moving directory 'missing'" "^missing rc=3$" \
        "^Autodriver: Error moving directory 'etc': it belongs to uid 0" "^notmine rc=3$" \
        "^etc intact$" "^Makefile$"; do
        if ! grep -qE -- "$want" <<<"$out"; then
            fail refusals "missing '$want' in: $(tr '\n' '|' <<<"$out" | head -c 800)"
            return
        fi
    done
    if grep -q "should not run" <<<"$out"; then
        fail refusals "the job ran"
        return
    fi
    ok refusals
}

check_abort() {  # the autodriver gets SIGTERM mid-job (its caller went away)
    newjob abort <<'EOF'
all:
	@echo started
	@setsid sleep 1000 >/dev/null 2>&1 &
	@echo x > /tmp/abort-leftover
	@sleep 1000
EOF
    local out
    out="$("${DOCKER_RUN[@]}" "${MOUNTS[@]}" -v "$TMP/abort:/home/mount" "$IMAGE" sh -c "
        cp -r mount/* autolab/
        su autolab -c 'autodriver -t 30 autolab > output/feedback 2>&1; echo rc=\$? > output/rc' &
        sleep 1.5
        for f in /proc/[0-9]*/status; do
            awk '/^Name:/ && \$2==\"autodriver\" {split(FILENAME, p, \"/\"); print p[3]}' \$f
        done > pids
        echo autodrivers=\$(wc -l < pids)
        kill -TERM \$(cat pids)
        wait
        cat output/rc output/feedback
        echo procs=\$($COUNT_PROCS)
        echo files=\$(find /home/autograde /tmp /var/tmp -mindepth 1 -user autograde | wc -l)" 2>&1)"
    local want
    for want in "^autodrivers=1$" "^rc=3$" \
        "^Autodriver: Job aborted: the autodriver received signal 15" "^started$" \
        "^procs=0$" "^files=0$"; do
        if ! grep -qE -- "$want" <<<"$out"; then
            fail abort_by_signal "missing '$want' in: $(tr '\n' '|' <<<"$out" | head -c 600)"
            return
        fi
    done
    ok abort_by_signal
}

check_layout
check_installed_autodriver
check_hello
check_make_fails
check_timeout
check_fork_bomb
check_huge_output
check_binary_output
check_leftovers
check_fsize
check_nproc
check_refusals
check_abort

[ "$failures" -eq 0 ]
