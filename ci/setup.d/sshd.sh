#!/usr/bin/env bash
# Set-up for the SSH deployment test (tests/tests/ssh.rs, docs/deploy-ssh.md).
#
# Installs openssh-server and openssh-client if missing, creates the unprivileged test user
# `executor-ssh`, and writes into a root-owned directory (/var/lib/executor-tests/ssh):
#   ssh_host_ed25519_key(.pub)  host key of the test sshd
#   id_ed25519(.pub)            client key pair; the public half is the user's only key
#   authorized_keys             read by the test sshd (AuthorizedKeysFile points here)
#   sshd_config                 loopback only, public-key auth only, no PAM, one user
# No sshd is started here and no system service is enabled: the test runs its own
# `sshd -D -e -f /var/lib/executor-tests/ssh/sshd_config -p PORT` on a free port.
# Idempotent. Needs root.
set -euo pipefail

DIR=/var/lib/executor-tests/ssh
USER_NAME=executor-ssh

if [ "$(id -u)" -ne 0 ]; then
    echo "ci/setup.d/sshd.sh: needs root (creates a user and a root-owned key directory)" >&2
    exit 1
fi

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for pkg in openssh-server openssh-client; do
    pkg_installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "ci/setup.d/sshd.sh: installing ${missing[*]}" >&2
    # Keep the package from starting a system sshd on port 22: only the test's own sshd
    # should run. policy-rc.d is removed again unless it existed before.
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ "$created_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

# sshd refuses to start without its privilege-separation directory.
mkdir -p /run/sshd
chmod 0755 /run/sshd

if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd --system --create-home --home-dir "/var/lib/executor-tests/$USER_NAME-home" \
        --shell /bin/sh --comment "executor SSH deployment tests" "$USER_NAME"
fi
# '*' : no password can match, but the account is not "locked" (sshd refuses locked
# accounts even for public-key logins when PAM is off).
usermod -p '*' "$USER_NAME"

install -d -m 0755 -o root -g root /var/lib/executor-tests "$DIR"
[ -f "$DIR/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C executor-test-host -f "$DIR/ssh_host_ed25519_key"
[ -f "$DIR/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C executor-ssh-test-client -f "$DIR/id_ed25519"
install -m 0644 -o root -g root "$DIR/id_ed25519.pub" "$DIR/authorized_keys"
chmod 0600 "$DIR/ssh_host_ed25519_key" "$DIR/id_ed25519"

cat >"$DIR/sshd_config" <<CONFIG
# Test sshd for executor's SSH deployment test; started by the test with -D -e -p PORT.
ListenAddress 127.0.0.1
Port 22022
HostKey $DIR/ssh_host_ed25519_key
PidFile none
AuthorizedKeysFile $DIR/authorized_keys
StrictModes yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin no
AllowUsers $USER_NAME
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTunnel no
LogLevel INFO
CONFIG
chmod 0644 "$DIR/sshd_config"

/usr/sbin/sshd -t -f "$DIR/sshd_config"
