#!/usr/bin/env bash
# test_units.sh: the shipped systemd units (deploy/systemd/*.service), as
# they are, checked by systemd itself: `systemd-analyze verify` in a scratch
# root (systemd's own unit directory copied in, the built binaries installed
# where the units' ExecStart names them) must print nothing at all, since a
# misspelt or unknown option is only a warning there; `systemd-analyze
# security --offline` rates the producer's sandbox; and the hardening
# docs/operators.md promises is present (the producer: a dedicated user, no new
# privileges, a read-only system with courselabs writable, as deploy/tango.json
# names it). A canary (an unknown option in a copy) must be caught, so an
# analyzer that went quiet cannot pass the test.
#
# Prints "ok NAME" / "FAIL NAME: reason" per check; exits 1 if any failed.
set -u
cd "$(dirname "$0")/../.."
BUILD="${BUILD:-build}"
MAX_EXPOSURE="2.0"   # systemd-analyze security: 0 best .. 10 worst; "OK" is below 4.5

failures=0
ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; failures=$((failures + 1)); }

root=$(mktemp -d /tmp/tango-units-XXXXXX)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd" "$root/usr/local/bin"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
ln -s usr/lib "$root/lib"
units=()
for u in deploy/systemd/*.service; do
    cp "$u" "$root/etc/systemd/system/"
    units+=("$(basename "$u")")
done
[ ${#units[@]} -ge 2 ] || fail units_present "deploy/systemd has ${#units[@]} units"

# Install each ExecStart binary from the build, where the unit names it.
for u in "${units[@]}"; do
    exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "deploy/systemd/$u")
    name=$(basename "$exe")
    if [ ! -x "$BUILD/$name" ]; then
        fail "$u: binary" "$BUILD/$name not built (run: make)"
        continue
    fi
    mkdir -p "$root$(dirname "$exe")"
    cp "$BUILD/$name" "$root$exe"
done

verify() {  # $1 = unit path inside $root; prints what systemd-analyze said
    (cd "$root" && systemd-analyze --root="$root" --man=no verify "$root/$1" 2>&1; echo "rc=$?")
}

for u in "${units[@]}"; do
    out=$(verify "etc/systemd/system/$u")
    if [ "$out" = "rc=0" ]; then
        ok "$u: systemd-analyze verify, no error or warning"
    else
        fail "$u: systemd-analyze verify" "$(echo "$out" | tr '\n' ' ' | head -c 600)"
    fi
done

# The canary: an unknown key is a warning only, and the test must see it.
sed 's/^PrivateTmp=yes/PrivateTmpp=yes/' deploy/systemd/tango-producer.service \
    >"$root/etc/systemd/system/tango-canary.service"
out=$(verify etc/systemd/system/tango-canary.service)
if echo "$out" | grep -q "Unknown key"; then
    ok "verify reports an unknown option (the check can fail)"
else
    fail "verify reports an unknown option" "$out"
fi
rm -f "$root/etc/systemd/system/tango-canary.service"

# The producer's sandbox, as systemd rates it.
p=deploy/systemd/tango-producer.service
sec=$(cd "$root" && systemd-analyze security --offline=yes --root="$root" --man=no \
      "$root/etc/systemd/system/tango-producer.service" 2>&1)
level=$(echo "$sec" | sed -n 's/.*Overall exposure level for tango-producer.service: \([0-9.]*\).*/\1/p')
if [ -n "$level" ] && awk -v l="$level" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(l <= m) }'; then
    ok "producer: systemd-analyze security exposure $level <= $MAX_EXPOSURE"
else
    fail "producer: systemd-analyze security exposure" "level '$level': $(echo "$sec" | tail -3)"
fi

has() {  # $1 = unit file, $2 = exact line
    grep -qxF "$2" "$1"
}
for line in "User=tango" "NoNewPrivileges=yes" "ProtectSystem=strict" "ProtectHome=yes" \
            "PrivateTmp=yes" "CapabilityBoundingSet=" "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX"; do
    if has "$p" "$line"; then ok "producer: $line"; else fail "producer: $line" "missing in $p"; fi
done
courselabs=$(python3 -c 'import json; print(json.load(open("deploy/tango.json"))["courselabs"])')
if has "$p" "ReadWritePaths=$courselabs"; then
    ok "producer: ReadWritePaths is deploy/tango.json's courselabs ($courselabs)"
else
    fail "producer: ReadWritePaths" "not deploy/tango.json's courselabs $courselabs"
fi
c=deploy/systemd/tango-consumer.service
for line in "ProtectHome=yes" "PrivateTmp=yes" "KillSignal=SIGTERM"; do
    if has "$c" "$line"; then ok "consumer: $line"; else fail "consumer: $line" "missing in $c"; fi
done
drain=$(python3 -c 'import json; print(json.load(open("deploy/tango.json"))["drain_timeout_s"])')
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)$/\1/p' "$c")
if [ -n "$stop" ] && [ "$stop" -gt "$drain" ]; then
    ok "consumer: TimeoutStopSec $stop > drain_timeout_s $drain (a drain is not cut short)"
else
    fail "consumer: TimeoutStopSec" "'$stop' not above drain_timeout_s $drain"
fi
if grep -q "docker.sock" "$c" && grep -qi "root" "$c"; then
    ok "consumer: the unit says what the Docker socket implies"
else
    fail "consumer: Docker socket note" "missing in $c"
fi

[ $failures -eq 0 ]
