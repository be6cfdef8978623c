#!/usr/bin/env bash
# Tools the integration tests drive besides the executor: util-linux (setpriv, unshare),
# procps, and openssl (the test CA and certificates of the wss:// tests). Idempotent; needs root when something is missing.
set -euo pipefail
missing=()
for pkg in util-linux procps openssl; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "ci/setup.d/tools.sh: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
