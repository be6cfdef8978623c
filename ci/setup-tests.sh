#!/usr/bin/env bash
# Everything ci/test.sh needs: what building needs (ci/setup.sh), then the set-up that
# only tests use, one script per part in ci/setup.d/ (test accounts, a loopback sshd).
# Idempotent. Needs root.
set -euo pipefail
cd "$(dirname "$0")"
bash setup.sh
for extra in setup.d/*.sh; do
    [ -e "$extra" ] || continue
    bash "$extra"
done
