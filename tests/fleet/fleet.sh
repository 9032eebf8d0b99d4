#!/usr/bin/env bash
# tests/fleet/fleet.sh: a fleet of SSH worker "hosts" on this one machine for
# the distDocker tests. Each host is a network namespace joined by a veth pair
# to one bridge, with its own address in a free 10.250.X.0/24 and its own
# sshd (Debian's /usr/sbin/sshd with a private config, host key and
# authorized key made here). All hosts share the local Docker engine through
# /var/run/docker.sock (same filesystem), each with its own volume directory.
#
#   fleet.sh up N PREFIX       build hosts 1..N; prints them, writes DIR/fleet.json
#   fleet.sh down N PREFIX     remove everything `up` made for PREFIX (N unused)
#   fleet.sh stop PREFIX I     kill every process of host I (sshd and its sessions)
#   fleet.sh start PREFIX I    start host I's sshd again
#
# PREFIX: 1..8 of [a-z0-9] (it names the namespaces, links and DIR =
# /run/tango-fleet/PREFIX). Made here: DIR (keys, known_hosts, sshd configs,
# logs, volume dirs), namespaces PREFIX-hI, bridge PREFIXbr with 10.250.X.1/24
# (the consumer's side; an iptables rule lets it receive only replies to
# connections it opened), veths PREFIXvI. The namespaces have no default
# route: traffic stays on the bridge. sshd listens on its namespace address
# only. `down` also removes the containers distDocker left on the hosts. Files:
#   DIR/client_key           private key accepted by every host (root)
#   DIR/known_hosts          the hosts' real keys
#   DIR/known_hosts_wrong    the same addresses with a key of no host
#   DIR/hostI/volumes        host I's volume_dir
#   DIR/fleet.json           {"dir","subnet","hosts":[{"index","address","netns","volume_dir"}]}
#   DIR/owner                the pid that owns the fleet ($FLEET_OWNER_PID, else
#                            the caller): `up` first removes every fleet whose
#                            owner is gone (left by a test that was killed)
# A dead host for tests: any unused address of the subnet, e.g. X.99.
set -euo pipefail

die() { echo "fleet.sh: $*" >&2; exit 1; }
usage() { die "usage: $0 up N PREFIX | down N PREFIX | stop PREFIX I | start PREFIX I"; }

check_prefix() { [[ "$1" =~ ^[a-z0-9]{1,8}$ ]] || die "PREFIX must be 1..8 of [a-z0-9]"; }
check_index() { [[ "$1" =~ ^[1-9][0-9]?$ ]] || die "bad host index '$1'"; }

BASE=/run/tango-fleet
SSHD=/usr/sbin/sshd

ns_of() { echo "$1-h$2"; }

host_addr() {  # PREFIX I
    local subnet; subnet=$(cat "$BASE/$1/subnet")
    echo "$subnet.$((10 + $2))"
}

pick_subnet() {  # first 10.250.X.0/24 not already used on this machine
    local used; used=$(ip -4 -o addr show; ip -4 route show)
    for x in $(seq 1 254); do
        grep -qE "10\.250\.$x\.[0-9]+" <<<"$used" || { echo "10.250.$x"; return; }
    done
    die "no free 10.250.X.0/24"
}

start_sshd() {  # PREFIX I
    local p=$1 i=$2 dir="$BASE/$1/host$2"
    mkdir -p /run/sshd && chmod 0755 /run/sshd  # sshd's privilege separation dir
    rm -f "$dir/sshd.pid"
    ip netns exec "$(ns_of "$p" "$i")" "$SSHD" -f "$dir/sshd_config" -E "$dir/sshd.log"
    for _ in $(seq 1 50); do
        [ -s "$dir/sshd.pid" ] && return 0
        sleep 0.1
    done
    die "host $i: sshd did not start (see $dir/sshd.log)"
}

stop_host() {  # PREFIX I: every process in the host's namespace (sshd, sessions, docker CLIs)
    local ns; ns=$(ns_of "$1" "$2")
    ip netns list | grep -qw "^$ns" || return 0
    local pids
    for _ in 1 2 3 4 5; do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [ -z "$pids" ] && return 0
        kill -KILL $pids 2>/dev/null || true
        sleep 0.1
    done
}

iptables_rule() {  # add|del PREFIX: the bridge address takes replies only
    command -v iptables >/dev/null || return 0
    local op=-I; [ "$1" = del ] && op=-D
    iptables -w 5 $op INPUT -i "$2br" -m conntrack ! --ctstate ESTABLISHED,RELATED -j DROP \
        2>/dev/null || [ "$1" = del ] || echo "fleet.sh: note: no iptables INPUT rule for $2br" >&2
}

up() {  # N PREFIX
    local n=$1 p=$2
    [[ "$n" =~ ^[1-9]$ ]] || die "N must be 1..9"
    [ -x "$SSHD" ] || die "$SSHD missing (apt-get install openssh-server)"
    command -v ssh-keygen >/dev/null || die "ssh-keygen missing"
    if grep -q '^root:!' /etc/shadow 2>/dev/null; then
        die "root's password is locked ('!' in /etc/shadow): sshd without PAM refuses such accounts"
    fi
    mkdir -p "$BASE" && chmod 0700 "$BASE"
    exec 9<"$BASE"  # one `up` at a time: two would pick the same subnet
    flock -w 60 9 || die "another fleet.sh up holds the lock on $BASE"
    down "$p" 2>/dev/null || true
    reap_orphans
    trap 'echo "fleet.sh: up failed; removing what it made" >&2; down "$p"' ERR
    mkdir -p /run/sshd && chmod 0755 /run/sshd  # sshd's privilege separation dir
    local dir="$BASE/$p"
    mkdir -m 0700 "$dir"
    local subnet; subnet=$(pick_subnet)
    echo "$subnet" >"$dir/subnet"
    echo "${FLEET_OWNER_PID:-$PPID}" >"$dir/owner"

    ssh-keygen -q -t ed25519 -N '' -C "tango-fleet-$p" -f "$dir/client_key"
    cp "$dir/client_key.pub" "$dir/authorized_keys"
    chmod 0600 "$dir/authorized_keys"
    ssh-keygen -q -t ed25519 -N '' -C impostor -f "$dir/impostor_key"
    : >"$dir/known_hosts"; : >"$dir/known_hosts_wrong"

    ip link add "${p}br" type bridge
    ip addr add "$subnet.1/24" dev "${p}br"
    ip link set "${p}br" up
    iptables_rule add "$p"

    local json_hosts=""
    for i in $(seq 1 "$n"); do
        local ns; ns=$(ns_of "$p" "$i")
        local hd="$dir/host$i" addr="$subnet.$((10 + i))"
        mkdir -m 0700 "$hd" "$hd/volumes"
        ssh-keygen -q -t ed25519 -N '' -C "host$i" -f "$hd/ssh_host_ed25519_key"
        echo "$addr $(cut -d' ' -f1,2 "$hd/ssh_host_ed25519_key.pub")" >>"$dir/known_hosts"
        echo "$addr $(cut -d' ' -f1,2 "$dir/impostor_key.pub")" >>"$dir/known_hosts_wrong"
        cat >"$hd/sshd_config" <<CFG
# sshd of fleet host $i ($addr in netns $ns); made by tests/fleet/fleet.sh
Port 22
ListenAddress $addr
HostKey $hd/ssh_host_ed25519_key
PidFile $hd/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
MaxSessions 20
MaxStartups 50:30:100
LogLevel VERBOSE
Subsystem sftp internal-sftp
# bash sources ~/.bashrc for commands run by sshd when it is the top-level
# shell; SHLVL=1 makes it a second-level one, so the machine's own rc files
# (slow, or printing) stay out of the tests' commands
SetEnv SHLVL=1
CFG
        "$SSHD" -t -f "$hd/sshd_config"
        ip netns add "$ns"
        ip link add "${p}v$i" type veth peer name "${p}p$i"
        ip link set "${p}p$i" netns "$ns"
        ip link set "${p}v$i" master "${p}br" up
        ip -n "$ns" link set lo up
        ip -n "$ns" link set "${p}p$i" name eth0
        ip -n "$ns" addr add "$addr/24" dev eth0
        ip -n "$ns" link set eth0 up
        start_sshd "$p" "$i"
        json_hosts+="${json_hosts:+,}{\"index\":$i,\"address\":\"$addr\",\"netns\":\"$ns\",\"volume_dir\":\"$hd/volumes\"}"
        echo "host $i $addr netns=$ns volume_dir=$hd/volumes"
    done
    # wait until every sshd answers on its address
    for i in $(seq 1 "$n"); do
        local addr="$subnet.$((10 + i))" ok=""
        for _ in $(seq 1 50); do
            if timeout 1 bash -c "exec 3<>/dev/tcp/$addr/22" 2>/dev/null; then ok=1; break; fi
            sleep 0.1
        done
        [ -n "$ok" ] || die "host $i ($addr): port 22 does not answer"
    done
    printf '{"dir":"%s","subnet":"%s","client_key":"%s","known_hosts":"%s","known_hosts_wrong":"%s","hosts":[%s]}\n' \
        "$dir" "$subnet" "$dir/client_key" "$dir/known_hosts" "$dir/known_hosts_wrong" "$json_hosts" \
        >"$dir/fleet.json"
    echo "key $dir/client_key"
    echo "known_hosts $dir/known_hosts"
    echo "fleet $dir/fleet.json"
    trap - ERR
    exec 9>&-
}

reap_orphans() {  # fleets whose owner process is gone
    local d o
    for d in "$BASE"/*/; do
        [ -f "$d/owner" ] || continue
        o=$(cat "$d/owner")
        if [[ "$o" =~ ^[0-9]+$ ]] && ! kill -0 "$o" 2>/dev/null; then
            echo "fleet.sh: removing fleet $(basename "$d") (owner $o is gone)" >&2
            down "$(basename "$d")"
        fi
    done
}

down() {  # PREFIX
    local p=$1 dir="$BASE/$1"
    # containers distDocker left on these hosts (it labels them tango.host=ADDR:PORT)
    if [ -f "$dir/subnet" ] && command -v docker >/dev/null; then
        local subnet i; subnet=$(cat "$dir/subnet")
        for i in $(seq 1 9); do
            docker ps -aq --filter "label=tango.host=$subnet.$((10 + i)):22" 2>/dev/null |
                xargs -r docker rm -f >/dev/null 2>&1 || true
        done
    fi
    for ns in $(ip netns list | awk '{print $1}' | grep -E "^$p-h[0-9]+$" || true); do
        stop_host "$p" "${ns##*-h}"
        ip netns del "$ns"
    done
    for l in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "^${p}(br|v[0-9]+)$" || true); do
        ip link del "$l" 2>/dev/null || true
    done
    iptables_rule del "$p"
    rm -rf "$dir"
}

[ $# -ge 1 ] || usage
[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, sshd)"
case "$1" in
    up)    [ $# -eq 3 ] || usage; check_prefix "$3"; up "$2" "$3" ;;
    down)  [ $# -eq 3 ] || usage; check_prefix "$3"; down "$3"
           rmdir "$BASE" 2>/dev/null || true ;;  # the last fleet gone
    stop)  [ $# -eq 3 ] || usage; check_prefix "$2"; check_index "$3"; stop_host "$2" "$3" ;;
    start) [ $# -eq 3 ] || usage; check_prefix "$2"; check_index "$3"
           [ -d "$BASE/$2/host$3" ] || die "no host $3 in fleet $2"; start_sshd "$2" "$3" ;;
    *) usage ;;
esac
