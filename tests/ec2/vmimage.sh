#!/usr/bin/env bash
# tests/ec2/vmimage.sh: the image of the ec2SSH tests' "virtual machines",
# built offline (no registry): autograding_image (users autolab/autograde,
# setuid autodriver, make, gcc) plus this host's OpenSSH server and
# ssh-keygen with the shared libraries the image lacks (both are Debian 12),
# an sshd_config (root login by key only, internal-sftp) and an entrypoint
# that makes the VM's own host key at boot (so each VM has its own, as EC2
# instances do), installs $AUTHORIZED_KEY for root (what cloud-init does
# with the instance's key pair) and runs sshd in the foreground.
#
# Prints the image's name, tango-ec2-vm:<12 hex of autograding_image's id>.
# Cached: a second run with the same autograding_image only prints it.
set -euo pipefail

die() { echo "vmimage.sh: $*" >&2; exit 1; }
base_id=$(docker image inspect autograding_image --format '{{.Id}}' 2>/dev/null) ||
    die "no autograding_image (make image)"
tag="tango-ec2-vm:$(echo "${base_id#sha256:}" | cut -c1-12)"
if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "$tag"
    exit 0
fi
[ -x /usr/sbin/sshd ] && [ -x /usr/bin/ssh-keygen ] || die "needs openssh-server on this host"

ctx=$(mktemp -d /tmp/tango-ec2-vm.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/root/usr/sbin" "$ctx/root/usr/bin" "$ctx/root/opt/tango-sshd/lib" \
         "$ctx/root/etc/ssh"
cp /usr/sbin/sshd "$ctx/root/usr/sbin/sshd"
cp /usr/bin/ssh-keygen "$ctx/root/usr/bin/ssh-keygen"
# The libraries sshd and ssh-keygen link; the Dockerfile keeps only those the
# image does not have already (same Debian release: same versions).
for lib in $(ldd /usr/sbin/sshd /usr/bin/ssh-keygen | awk '$3 ~ /^\// {print $3}' | sort -u); do
    cp -L "$lib" "$ctx/root/opt/tango-sshd/lib/"
done
cat > "$ctx/root/etc/ssh/sshd_config" <<'CFG'
Port 22
ListenAddress 0.0.0.0
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
MaxSessions 20
MaxStartups 50:30:100
Subsystem sftp internal-sftp
PidFile /run/sshd.pid
LogLevel INFO
CFG
cat > "$ctx/root/usr/bin/tango-vm-boot" <<'BOOT'
#!/bin/sh
# The test VM's boot: its own host key, the key pair's public key, sshd.
set -e
ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
install -d -m 700 /root/.ssh
printf '%s\n' "$AUTHORIZED_KEY" > /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
install -d -m 755 /run/sshd
exec /usr/sbin/sshd -D -e
BOOT
chmod 755 "$ctx/root/usr/bin/tango-vm-boot"
cat > "$ctx/Dockerfile" <<'DF'
FROM autograding_image
COPY root/ /
RUN for f in /opt/tango-sshd/lib/*; do \
        [ -e "/lib/x86_64-linux-gnu/$(basename "$f")" ] || [ -e "/usr/lib/x86_64-linux-gnu/$(basename "$f")" ] || \
            cp "$f" /lib/x86_64-linux-gnu/; \
    done \
 && rm -rf /opt/tango-sshd \
 && useradd -r -d /run/sshd -s /usr/sbin/nologin sshd \
 && /usr/sbin/sshd -t -f /etc/ssh/sshd_config -h /dev/null 2>/dev/null; /usr/bin/ssh-keygen -? >/dev/null 2>&1; true
WORKDIR /home
CMD ["/usr/bin/tango-vm-boot"]
DF
docker build -q --network none -t "$tag" "$ctx" >"$ctx/build.log" 2>&1 || { cat "$ctx/build.log" >&2; die "docker build failed"; }
echo "$tag"
