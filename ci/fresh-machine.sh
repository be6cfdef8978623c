#!/usr/bin/env bash
# The README's start command on a machine that has never built executor: a clone of this
# repository at HEAD (committed work only) and an empty CARGO_HOME, so every crate comes
# from the registry and nothing a previous build downloaded can hide a missing one. The
# Rust toolchain is still taken from rustup's usual place. Sends `initialize` on stdin and
# checks that the answer carries a sessionId.
#
#   bash ci/fresh-machine.sh
#
# Environment:
#   FRESH_MACHINE_KEEP=1   keep the temporary directory (clone, CARGO_HOME, target)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
commit=$(git -C "$root" rev-parse HEAD)
work=$(mktemp -d /tmp/executor-fresh.XXXXXX)
cleanup() {
    if [[ ${FRESH_MACHINE_KEEP:-0} == 1 ]]; then
        echo "ci/fresh-machine.sh: kept $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# The toolchain stays where rustup put it; only cargo's registry and caches start empty.
export RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_HOME=$work/cargo-home
mkdir -p "$CARGO_HOME"
unset CARGO_TARGET_DIR

git clone --quiet --no-checkout "$root" "$work/repo"
git -C "$work/repo" checkout --quiet --detach "$commit"

echo "ci/fresh-machine.sh: $commit in $work/repo, CARGO_HOME=$CARGO_HOME (empty)" >&2
start=$(date +%s)
answer=$(cd "$work/repo" &&
    printf '%s\n' '{"id":1,"method":"initialize","params":{"clientName":"ci"}}' |
    bash ci/serve.sh --listen stdio)
elapsed=$(($(date +%s) - start))

if [[ $answer != *'"sessionId"'* ]]; then
    echo "ci/fresh-machine.sh: FAILED: no sessionId in the answer to initialize:" >&2
    printf '%s\n' "$answer" >&2
    exit 1
fi
echo "ci/fresh-machine.sh: ok: initialize answered on a fresh machine (${elapsed}s, build included)" >&2
