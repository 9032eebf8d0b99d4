#!/usr/bin/env bash
# build-image.sh: builds the autograding image offline (no registry) with
# debootstrap and `docker import`.
#
#   deploy/image/build-image.sh AUTODRIVER_BINARY [IMAGE_NAME]
#
# IMAGE_NAME defaults to autograding_image. The image holds a minimal Debian
# (bookworm) with make, gcc, libc6-dev and python3, the users autolab and
# autograde, /home/{autolab,autograde,output,mount}, WORKDIR /home and the
# given autodriver installed as /usr/bin/autodriver, root-owned, mode 4755.
#
# Environment:
#   FORCE=1             rebuild even if the image is up to date
#   REFRESH_ROOTFS=1    run debootstrap again even if its tarball is cached
#   EXTRA_PACKAGES=a,b  more Debian packages for the image (a course's needs)
#   SUITE, MIRROR       Debian suite and mirror (bookworm, deb.debian.org)
#   CACHE_DIR           where the debootstrap tarball is kept
#                       (/var/cache/tango-image)
#
# The image carries the labels tango.autodriver.sha256 (of the binary) and
# tango.image.recipe (of the package list and this script); when both match,
# the build is skipped. The debootstrap result is cached as a tarball, so a
# rebuild after changing only the autodriver takes seconds.
set -euo pipefail

SUITE="${SUITE:-bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
CACHE_DIR="${CACHE_DIR:-/var/cache/tango-image}"
BASE_PACKAGES="make,gcc,libc6-dev,python3"
ROOTFS_RECIPE=2   # bump when the debootstrap/slimming steps change (new cache key)
AUTOLAB_UID=1000
AUTOGRADE_UID=1001

say() { printf 'build-image: %s\n' "$*" >&2; }
die() { printf 'build-image: error: %s\n' "$*" >&2; exit 1; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $0 AUTODRIVER_BINARY [IMAGE_NAME]"
BINARY="$1"
IMAGE="${2:-autograding_image}"
START=$SECONDS

[ -f "$BINARY" ] && [ -x "$BINARY" ] || die "$BINARY is not an executable file (run make first)"
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap and file ownership need it)"
command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon (is dockerd running?)"

PACKAGES="$BASE_PACKAGES${EXTRA_PACKAGES:+,$EXTRA_PACKAGES}"
PACKAGES="$(printf '%s' "$PACKAGES" | tr ', ' '\n\n' | sed '/^$/d' | sort -u | paste -sd, -)"
BIN_SHA="$(sha256sum "$BINARY" | cut -d' ' -f1)"
ROOTFS_KEY="$(printf '%s %s %s %s' "$ROOTFS_RECIPE" "$SUITE" "$MIRROR" "$PACKAGES" | sha256sum | cut -c1-16)"
RECIPE_SHA="$( { printf '%s\n' "$ROOTFS_KEY"; cat "$0"; } | sha256sum | cut -c1-16)"

# ---- up to date already? ----
if [ "${FORCE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    have_bin="$(docker image inspect -f '{{index .Config.Labels "tango.autodriver.sha256"}}' "$IMAGE" 2>/dev/null || true)"
    have_recipe="$(docker image inspect -f '{{index .Config.Labels "tango.image.recipe"}}' "$IMAGE" 2>/dev/null || true)"
    if [ "$have_bin" = "$BIN_SHA" ] && [ "$have_recipe" = "$RECIPE_SHA" ]; then
        say "image $IMAGE is up to date (autodriver sha256 ${BIN_SHA:0:12}); FORCE=1 rebuilds it"
        exit 0
    fi
    say "image $IMAGE exists but is out of date: rebuilding"
fi

WORK="$(mktemp -d /var/tmp/tango-image.XXXXXX)"
cleanup() { rm -rf --one-file-system "$WORK"; }
trap cleanup EXIT

# ---- 1. the Debian root file system (cached) ----
mkdir -p "$CACHE_DIR"
ROOTFS_TAR="$CACHE_DIR/rootfs-$SUITE-$ROOTFS_KEY.tar"
if [ "${REFRESH_ROOTFS:-0}" = 1 ] || [ ! -s "$ROOTFS_TAR" ]; then
    command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
    say "debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR; this takes a few minutes"
    mkdir "$WORK/bootstrap"
    if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$WORK/bootstrap" "$MIRROR" \
            >"$WORK/debootstrap.log" 2>&1; then
        tail -n 30 "$WORK/debootstrap.log" >&2
        die "debootstrap failed (full log above)"
    fi
    say "slimming the root file system (apt caches and lists, documentation, man pages, translations)"
    rm -rf "$WORK/bootstrap"/var/cache/apt/archives/*.deb \
           "$WORK/bootstrap"/var/cache/apt/*.bin \
           "$WORK/bootstrap"/var/lib/apt/lists/* \
           "$WORK/bootstrap"/var/log/* \
           "$WORK/bootstrap"/usr/share/man/* \
           "$WORK/bootstrap"/usr/share/info/* \
           "$WORK/bootstrap"/usr/share/locale/*/LC_MESSAGES \
           "$WORK/bootstrap"/tmp/* "$WORK/bootstrap"/var/tmp/*
    # keep the copyright notices, drop the rest of /usr/share/doc
    find "$WORK/bootstrap/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$WORK/bootstrap/usr/share/doc" -mindepth 1 -type d -empty -delete
    say "caching the root file system as $ROOTFS_TAR"
    tar --numeric-owner -C "$WORK/bootstrap" -cf "$ROOTFS_TAR.tmp" .
    mv -f "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
    rm -rf --one-file-system "$WORK/bootstrap"
    # older tarballs of other package lists are of no use any more
    find "$CACHE_DIR" -maxdepth 1 -name "rootfs-$SUITE-*.tar" ! -name "$(basename "$ROOTFS_TAR")" -delete
else
    say "using the cached root file system $ROOTFS_TAR"
fi

# ---- 2. the autograding layout ----
ROOT="$WORK/root"
mkdir "$ROOT"
tar --numeric-owner -C "$ROOT" -xf "$ROOTFS_TAR"

say "adding users autolab ($AUTOLAB_UID) and autograde ($AUTOGRADE_UID)"
add_user() {  # name uid
    local name="$1" id="$2"
    grep -q "^$name:" "$ROOT/etc/passwd" && die "user $name already exists in the root file system"
    grep -q "^[^:]*:[^:]*:$id:" "$ROOT/etc/passwd" && die "uid $id is already taken in the root file system"
    echo "$name:x:$id:$id::/home/$name:/bin/bash" >>"$ROOT/etc/passwd"
    echo "$name:x:$id:" >>"$ROOT/etc/group"
    echo "$name:!:19000:0:99999:7:::" >>"$ROOT/etc/shadow"
    [ -f "$ROOT/etc/gshadow" ] && echo "$name:!::" >>"$ROOT/etc/gshadow"
    return 0
}
add_user autolab "$AUTOLAB_UID"
add_user autograde "$AUTOGRADE_UID"

say "creating /home/{autolab,autograde,output,mount}"
install -d -m 755 -o root -g root "$ROOT/home"
install -d -m 755 -o "$AUTOLAB_UID" -g "$AUTOLAB_UID" "$ROOT/home/autolab" "$ROOT/home/output"
install -d -m 755 -o "$AUTOGRADE_UID" -g "$AUTOGRADE_UID" "$ROOT/home/autograde"
install -d -m 755 -o root -g root "$ROOT/home/mount"

say "installing the autodriver (sha256 ${BIN_SHA:0:12}) as /usr/bin/autodriver, setuid root"
install -o root -g root -m 4755 "$BINARY" "$ROOT/usr/bin/autodriver"

# ---- 3. checks before import ----
for tool in su make gcc python3 bash; do
    found=""
    for d in bin usr/bin sbin usr/sbin; do
        [ -x "$ROOT/$d/$tool" ] && found=1
    done
    [ -n "$found" ] || die "$tool is missing from the root file system"
done
[ "$(stat -c '%u %a' "$ROOT/usr/bin/autodriver")" = "0 4755" ] || die "autodriver is not root-owned 4755"
chroot "$ROOT" /usr/bin/autodriver --help >/dev/null ||
    die "the autodriver does not run in the image (use the static build: make build/autodriver)"

# ---- 4. import ----
say "importing the image as $IMAGE"
OLD_ID="$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
tar --numeric-owner -C "$ROOT" -c . | docker import \
    --change 'WORKDIR /home' \
    --change 'CMD ["/bin/bash"]' \
    --change "LABEL tango.autodriver.sha256=$BIN_SHA" \
    --change "LABEL tango.image.recipe=$RECIPE_SHA" \
    --change "LABEL tango.image.packages=$PACKAGES" \
    --message "autograding image: debootstrap $SUITE minbase + $PACKAGES" \
    - "$IMAGE" >/dev/null

# the previous build, now untagged, goes (unless a container still uses it)
NEW_ID="$(docker image inspect -f '{{.Id}}' "$IMAGE")"
if [ -n "$OLD_ID" ] && [ "$OLD_ID" != "$NEW_ID" ] &&
    [ -z "$(docker image inspect -f '{{join .RepoTags ""}}' "$OLD_ID" 2>/dev/null)" ]; then
    docker rmi "$OLD_ID" >/dev/null 2>&1 && say "removed the previous build ${OLD_ID:7:12}" ||
        say "kept the previous build ${OLD_ID:7:12} (a container still uses it)"
fi
SIZE="$(docker image inspect -f '{{.Size}}' "$IMAGE")"
say "built $IMAGE: $((SIZE / 1024 / 1024)) MiB in $((SECONDS - START)) s"
