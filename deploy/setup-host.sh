#!/usr/bin/env bash
# setup-host.sh: makes this Debian 12 machine ready to build, test and run
# the service: installs the packages (only the missing ones; apt-get update
# once), mounts cgroup v1 hierarchies crun needs on a hybrid host, and
# starts dockerd if it is not answering. Idempotent; run as root.
set -euo pipefail

PACKAGES=(
  build-essential pkg-config
  libhiredis-dev libevent-dev libjansson-dev libssh2-1-dev libcurl4-openssl-dev libssl-dev
  libarchive-dev
  libcmocka-dev libclang-rt-14-dev
  redis-server docker.io debootstrap openssh-server openssh-client iproute2 iptables
  python3 curl wrk procps
  faketime clang
  libxml2-dev crun haproxy nginx prometheus redis-sentinel systemd
  docker-compose docker-registry skopeo umoci apache2-utils
)

say() { printf 'setup-host: %s\n' "$*" >&2; }

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# docker-registry is installed for the tests, which start their own on
# loopback with TLS and auth: the package's service (plain HTTP on :5000,
# no auth) must not run on this machine.
if [ -e /etc/init.d/docker-registry ]; then
  service docker-registry stop >/dev/null 2>&1 || true
  update-rc.d docker-registry disable >/dev/null 2>&1 || true
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

# A hybrid cgroup host (v1 hierarchies plus the unified v2 one) that leaves
# a controller only in the unified hierarchy (hugetlb on this machine) is
# one crun 1.8 refuses ("drop all controllers from cgroupv2"). Mounting it
# as a v1 hierarchy too, as the other controllers are, lets localOCI use
# crun. A controller v2 cgroups are using cannot move: then nothing changes
# and localOCI picks runc.
if [ -f /sys/fs/cgroup/unified/cgroup.controllers ] && [ -d /sys/fs/cgroup/cpu ]; then
  for c in $(cat /sys/fs/cgroup/unified/cgroup.controllers); do
    if mkdir -p "/sys/fs/cgroup/$c" 2>/dev/null &&
       mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" 2>/dev/null; then
      say "mounted the $c cgroup v1 hierarchy (for crun: no controllers left in cgroup v2)"
    else
      say "note: $c stays in cgroup v2 only; localOCI will use runc, not crun"
    fi
  done
fi

# Debian's packages start services through systemd, which CI machines and
# containers may not run: start what is needed by hand when it is not up.
if ! docker info >/dev/null 2>&1; then
  say "starting dockerd"
  mkdir -p /var/log
  nohup dockerd >/var/log/tango-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { say "dockerd did not start; see /var/log/tango-dockerd.log"; exit 1; }
fi
# moto (test_e2e_ec2's EC2 API) comes with the machine's Python 3.11, not
# from Debian: say so early when it is missing.
command -v moto_server >/dev/null 2>&1 ||
  say "warning: moto_server not found (pip cannot reach its index here): test_e2e_ec2 will fail"
say "ready"
