#!/usr/bin/env bash
# tests/bench/registry_pull.sh: localOCI's registry pull next to Debian's
# skopeo and umoci, from the same local registry (not part of make check or
# make bench's default sections; run it by hand, as root, after make all):
#
#   tests/bench/registry_pull.sh
#
# Starts Debian's distribution registry on loopback (TLS with a CA made
# here, htpasswd auth), pushes autograding_image to it with skopeo (gzip
# layers) and a second image that shares its base plus one layer, then
# times, each from an empty destination:
#   fetch + verify: skopeo copy docker://... oci:DIR   vs  localOCI's fetch
#                   of the layers (sha256 checked as they arrive; the
#                   fetch_ms of its image_pulled log line)
#   fetch + unpack: skopeo copy then umoci unpack      vs  localOCI's whole
#                   pull (manifest, config, layers fetched, verified and
#                   unpacked into its layer store)
#   the second image on the same store: the layers and bytes it fetched.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
BUILD="${BUILD:-build}"
T="$BENCH_TMP"
USER_=bench PASS_=bench-pw-$$

# ---- the registry ----
(cd "$T" &&
 openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" \
     -keyout ca.key -out ca.crt 2>/dev/null &&
 openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout srv.key -out srv.csr 2>/dev/null &&
 printf 'subjectAltName=IP:127.0.0.1\n' > srv.ext &&
 openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
     -extfile srv.ext -out srv.crt 2>/dev/null)
mkdir -p "$T/certs" && cp "$T/ca.crt" "$T/certs/ca.crt"
htpasswd -Bbn "$USER_" "$PASS_" > "$T/htpasswd"
PORT=$(free_port)
HOST=127.0.0.1:$PORT
cat > "$T/registry.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $T/storage
http:
  addr: $HOST
  secret: bench
  tls:
    certificate: $T/srv.crt
    key: $T/srv.key
auth:
  htpasswd:
    realm: bench
    path: $T/htpasswd
YML
docker-registry serve "$T/registry.yml" > "$T/registry.log" 2>&1 &
bench_track $!
wait_port "$PORT" $! || { echo "registry did not start"; cat "$T/registry.log"; exit 1; }

SK_SRC=(--src-creds "$USER_:$PASS_" --src-cert-dir "$T/certs")
SK_DST=(--dest-creds "$USER_:$PASS_" --dest-cert-dir "$T/certs")
echo "# pushing autograding_image and a second image sharing its base"
skopeo copy --quiet "${SK_DST[@]}" docker-daemon:autograding_image:latest "docker://$HOST/bench/img:v1"
SECOND=tango-bench-second:$$
cid=$(docker create autograding_image true)
echo "second image $$" > "$T/marker"
docker cp "$T/marker" "$cid:/marker" >/dev/null
docker commit "$cid" "$SECOND" >/dev/null
docker rm -f "$cid" >/dev/null
skopeo copy --quiet "${SK_DST[@]}" "docker-daemon:$SECOND" "docker://$HOST/bench/second:v1"
docker rmi "$SECOND" >/dev/null

ms() { date +%s%3N; }

# ---- skopeo, umoci ----
sync; t0=$(ms)
skopeo copy --quiet "${SK_SRC[@]}" "docker://$HOST/bench/img:v1" "oci:$T/oci:v1"
t1=$(ms)
umoci unpack --image "$T/oci:v1" "$T/bundle" > /dev/null
t2=$(ms)
SKOPEO=$((t1 - t0)) UMOCI=$((t2 - t1))
SIZE=$(du -sm "$T/oci" | cut -f1)
rm -rf "$T/oci" "$T/bundle"

# ---- localOCI ----
REGS="{\"$HOST\": {\"credentials\": \"$T/creds\", \"ca_file\": \"$T/ca.crt\"}}"
printf '%s:%s\n' "$USER_" "$PASS_" > "$T/creds" && chmod 600 "$T/creds"
run_pull() { # REF LOG
    "$BUILD/bench/oci_pull" "$BUILD/vmms/localOCI.so" "/run/tbp$$" "$T/store" "$REGS" "$1" \
        > "$2.out" 2> "$2.log" || { cat "$2.log"; exit 1; }
    grep -o 'event=image_pulled.*' "$2.log" | head -1
}
sync
L1=$(run_pull "$HOST/bench/img:v1" "$T/pull1")
L2=$(run_pull "$HOST/bench/second:v1" "$T/pull2")
rm -rf "/run/tbp$$"
field() { sed -n "s/.*$1=\\([0-9]*\\).*/\\1/p" <<< "$2"; }
FETCH=$(field fetch_ms "$L1") UNPACK=$(field unpack_ms "$L1") TOTAL=$(field " ms" "$L1")
TOTAL=$(sed -n 's/.* ms=\([0-9]*\).*/\1/p' <<< "$L1")

printf '\n%-58s %10s %10s\n' "figure (autograding_image, ${SIZE} MB as OCI layout)" "localOCI" "skopeo(+umoci)"
printf '%-58s %8s ms %8s ms\n' "fetch + verify" "$FETCH" "$SKOPEO"
printf '%-58s %8s ms %8s ms\n' "fetch + unpack (whole pull; skopeo then umoci unpack)" "$TOTAL" "$((SKOPEO + UMOCI))"
printf '%-58s %s\n' "second image sharing the base: layers fetched of all" \
    "$(field fetched "$L2") of $(field layers "$L2") ($(field bytes "$L2") bytes, $(sed -n 's/.* ms=\([0-9]*\).*/\1/p' <<< "$L2") ms)"
echo "# localOCI: $L1"
echo "# commands: skopeo copy ${SK_SRC[*]} docker://$HOST/bench/img:v1 oci:DIR:v1;" \
     "umoci unpack --image DIR:v1 BUNDLE; $BUILD/bench/oci_pull $BUILD/vmms/localOCI.so RUN STORE REGS REF"
