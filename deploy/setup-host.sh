#!/usr/bin/env bash
# setup-host.sh: makes this Debian 12 machine ready to build, test and run
# the service: installs the packages (only the missing ones; apt-get update
# once) and starts dockerd if it is not answering. Idempotent; run as root.
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
