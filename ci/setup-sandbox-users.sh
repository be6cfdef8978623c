#!/usr/bin/env bash
# Prepare this host for the sandbox integration tests (tests/tests/sandbox_*.rs).
# Idempotent. Must run as root.
#  - installs what the tests drive: bubblewrap (system bwrap), python3 (syscall probes),
#    util-linux (setpriv, unshare);
#  - creates the unprivileged user `executor-test` that the unprivileged variants run as;
#  - checks that this user can create user namespaces, and says so loudly if not (the
#    tests then fail rather than pass silently).
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "setup-sandbox-users.sh: must run as root" >&2
    exit 1
fi

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
[ -x /usr/bin/python3 ] || missing+=(python3)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if ! id -u executor-test >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin executor-test
fi

if ! setpriv --reuid executor-test --regid executor-test --clear-groups -- \
        bwrap --unshare-user --ro-bind / / true 2>/tmp/executor-userns-check.err; then
    echo "setup-sandbox-users.sh: WARNING: user executor-test cannot create user namespaces:" >&2
    cat /tmp/executor-userns-check.err >&2
    echo "  (check kernel.unprivileged_userns_clone, user.max_user_namespaces, and on Ubuntu" >&2
    echo "   kernel.apparmor_restrict_unprivileged_userns); the unprivileged sandbox tests will fail." >&2
fi
rm -f /tmp/executor-userns-check.err
echo "setup-sandbox-users.sh: ok (user executor-test uid $(id -u executor-test))"
