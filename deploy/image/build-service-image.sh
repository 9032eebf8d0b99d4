#!/usr/bin/env bash
# build-service-image.sh: builds the service's own image (producer,
# consumer, tangoctl, the VMMS plugins) offline, from this host's files: no
# registry, no package download, no compiler in the image.
#
#   deploy/image/build-service-image.sh BUILD_DIR [IMAGE_NAME]
#
# BUILD_DIR is a `make` output (build/): its tango-producer, tango-consumer,
# tangoctl and vmms/*.so go in, with every shared library they load (ldd),
# the host's /bin/sh, iptables/ip6tables (the backend the host uses: its
# rules must be the ones the host's Docker sees), curl (the health check),
# redis-server (the complete compose file's Redis, so nothing is pulled) and
# the CA bundle. IMAGE_NAME defaults to tango-service. The image:
#   - users: tango (uid 970, the producer's user, docs/operators.md) and root
#     (the consumer: it drives the Docker socket and the host's firewall);
#     USER tango by default, the consumer's service sets user root;
#   - /var/lib/tango/courselabs and /var/lib/tango/redis owned by tango,
#     /var/lib/tango/volumes 0700;
#   - ENV TANGO_BIND=0.0.0.0 (the producer inside its container),
#     TANGO_COURSELABS, TANGO_VMMS_DIR; config keys as TANGO_<KEY> or
#     Autolab's names (docs/autolab-compose.md);
#   - CMD the producer; HEALTHCHECK GET /health on TANGO_PORT (3000).
# It carries the label tango.service.sha256 (of its files and this script);
# when it matches, the build is skipped (FORCE=1 rebuilds).
# localOCI needs crun/runc and ec2SSH/distDocker their keys: the image has
# the plugins, a site that uses them adds what they need.
set -euo pipefail

TANGO_UID=970
say() { printf 'build-service-image: %s\n' "$*" >&2; }
die() { printf 'build-service-image: error: %s\n' "$*" >&2; exit 1; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $0 BUILD_DIR [IMAGE_NAME]"
BUILD_DIR="$1"
IMAGE="${2:-tango-service}"
START=$SECONDS
PROGRAMS=(tango-producer tango-consumer tangoctl)
for p in "${PROGRAMS[@]}"; do
    [ -x "$BUILD_DIR/$p" ] || die "$BUILD_DIR/$p is missing (run make first)"
done
ls "$BUILD_DIR"/vmms/*.so >/dev/null 2>&1 || die "$BUILD_DIR/vmms/*.so are missing (run make)"
[ "$(id -u)" -eq 0 ] || die "must run as root (file ownership in the image needs it)"
docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon (is dockerd running?)"
# the host's tools the image carries (resolved through /etc/alternatives)
TOOLS=(/bin/sh /usr/bin/curl "$(command -v redis-server || die "redis-server is not installed")")
for t in iptables iptables-restore ip6tables ip6tables-restore; do
    TOOLS+=("$(command -v "$t" || die "$t is not installed (apt-get install iptables)")")
done

# ---- up to date already? ----
SUM="$( { sha256sum "$0"; for p in "${PROGRAMS[@]}"; do sha256sum "$BUILD_DIR/$p"; done
          sha256sum "$BUILD_DIR"/vmms/*.so; for t in "${TOOLS[@]}"; do readlink -f "$t"; done; } |
        sed 's|  .*/|  |' | sha256sum | cut -c1-16)"
if [ "${FORCE:-0}" != 1 ] &&
   [ "$(docker image inspect -f '{{index .Config.Labels "tango.service.sha256"}}' "$IMAGE" 2>/dev/null)" = "$SUM" ]; then
    say "image $IMAGE is up to date ($SUM); FORCE=1 rebuilds it"
    exit 0
fi

WORK="$(mktemp -d /var/tmp/tango-service-image.XXXXXX)"
trap 'rm -rf --one-file-system "$WORK"' EXIT
ROOT="$WORK/root"
mkdir -p "$ROOT"/{etc,tmp,usr/local/bin,usr/lib/tango/vmms,var/lib/tango,etc/tango,etc/ssl/certs,proc,sys,dev,run}
chmod 1777 "$ROOT/tmp"
# the host's merged /usr (/lib -> usr/lib, ...): the same links, so a library
# reached by both paths is stored once
for d in bin sbin lib lib64; do
    if [ -L "/$d" ]; then
        mkdir -p "$ROOT/$(readlink "/$d" | sed 's|^/||')"
        ln -s "$(readlink "/$d")" "$ROOT/$d"
    fi
done

# copy_file SRC: SRC's file into the image at its real path, and SRC as a
# link to it when SRC is a link (a library's soname); parents made.
copy_file() {
    local src="$1" real
    real="$(readlink -f "$src")"
    mkdir -p "$ROOT$(dirname "$real")"
    [ -e "$ROOT$real" ] || cp -p "$real" "$ROOT$real"
    if [ "$real" != "$src" ] && [ ! -e "$ROOT$src" ]; then
        mkdir -p "$ROOT$(dirname "$src")"
        ln -s "$real" "$ROOT$src"
    fi
}
# copy_libs FILE: every shared library FILE loads (and the loader).
copy_libs() {
    local lib
    for lib in $(ldd "$1" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
        [ -e "$ROOT$lib" ] || copy_file "$lib"
    done
}

say "programs and plugins from $BUILD_DIR"
for p in "${PROGRAMS[@]}"; do
    install -m 755 "$BUILD_DIR/$p" "$ROOT/usr/local/bin/$p"
    copy_libs "$BUILD_DIR/$p"
done
for so in "$BUILD_DIR"/vmms/*.so; do
    install -m 644 "$so" "$ROOT/usr/lib/tango/vmms/"
    copy_libs "$so"
done

say "host tools: ${TOOLS[*]}"
for t in "${TOOLS[@]}"; do
    mkdir -p "$ROOT$(dirname "$t")"
    cp -p "$(readlink -f "$t")" "$ROOT$t"   # xtables-*-multi picks its role from argv[0]
    copy_libs "$t"
done
XT=/usr/lib/x86_64-linux-gnu/xtables
[ -d "$XT" ] || XT="$(dirname "$(ldconfig -p | grep -m1 -o '/[^ ]*libxtables[^ ]*')")/xtables"
mkdir -p "$ROOT$XT"
cp -p "$XT"/*.so "$ROOT$XT/"
for so in "$ROOT$XT"/*.so; do copy_libs "$so"; done
cp -p /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/"
[ -d /etc/iproute2 ] && cp -a /etc/iproute2 "$ROOT/etc/" || true
for f in /etc/protocols /etc/services /etc/ethertypes; do [ -f "$f" ] && cp -p "$f" "$ROOT$f"; done

say "users root and tango ($TANGO_UID), /var/lib/tango"
printf 'root:x:0:0:root:/root:/bin/sh\ntango:x:%d:%d:tango:/nonexistent:/usr/sbin/nologin\n' \
    "$TANGO_UID" "$TANGO_UID" >"$ROOT/etc/passwd"
printf 'root:x:0:\ntango:x:%d:\n' "$TANGO_UID" >"$ROOT/etc/group"
printf 'hosts: files dns\n' >"$ROOT/etc/nsswitch.conf"
install -d -m 755 -o "$TANGO_UID" -g "$TANGO_UID" "$ROOT/var/lib/tango/courselabs" \
    "$ROOT/var/lib/tango/redis"
install -d -m 700 -o root -g root "$ROOT/var/lib/tango/volumes" "$ROOT/root"

say "checks: every program starts in the image root"
for p in "${PROGRAMS[@]}"; do
    chroot "$ROOT" "/usr/local/bin/$p" -h >/dev/null 2>&1 || die "$p does not run in the image root"
done
chroot "$ROOT" /usr/sbin/iptables -V >/dev/null || die "iptables does not run in the image root"
chroot "$ROOT" /usr/bin/curl --version >/dev/null || die "curl does not run in the image root"
for c in cc gcc; do [ ! -e "$ROOT/usr/bin/$c" ] || die "a compiler ($c) got into the image"; done

say "importing $IMAGE"
tar --numeric-owner -C "$ROOT" -c . | docker import \
    --change "ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV TANGO_BIND=0.0.0.0" \
    --change "ENV TANGO_COURSELABS=/var/lib/tango/courselabs" \
    --change "ENV TANGO_VMMS_DIR=/usr/lib/tango/vmms" \
    --change "USER tango" \
    --change "WORKDIR /var/lib/tango" \
    --change "EXPOSE 3000" \
    --change 'CMD ["/usr/local/bin/tango-producer"]' \
    --message "tango service image: $BUILD_DIR's programs and the host's libraries" \
    - "$IMAGE:rootfs" >/dev/null
# docker import cannot set a health check: one local build step (no registry:
# FROM names the image just imported)
printf '%s\n' "FROM $IMAGE:rootfs" \
    'HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD curl -fsS "http://127.0.0.1:${TANGO_PORT:-3000}/health" >/dev/null || exit 1' \
    "LABEL tango.service.sha256=$SUM" |
    DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" - >/dev/null
docker rmi "$IMAGE:rootfs" >/dev/null 2>&1 || true
SIZE="$(docker image inspect -f '{{.Size}}' "$IMAGE")"
say "built $IMAGE: $((SIZE / 1024 / 1024)) MiB in $((SECONDS - START)) s"
